//! Operations (issue 11): filters, the log file, periodic statistics, completions, man page.

use crate::common::*;

#[tokio::test]
async fn completions_for_every_shell_name_the_subcommands_and_flags() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let run = atg(&["completions".into(), shell.into()], &[]).await;
        assert_eq!(run.code, 0, "{shell}: {run}");
        for expected in ["deploy", "--dataplane-mode", "plugins"] {
            assert!(
                run.stdout.contains(expected),
                "{shell}: `{expected}` missing from the script"
            );
        }
    }
    let unknown = atg(&["completions".into(), "tcsh".into()], &[]).await;
    assert_eq!(unknown.code, 2, "{unknown}");
    assert!(unknown.stdout.is_empty(), "{unknown}");
}

#[tokio::test]
async fn the_man_page_is_roff_naming_every_flag_with_its_help() {
    let run = atg(&["man".into()], &[]).await;
    assert_eq!(run.code, 0, "{run}");
    // clap_mangen opens with the two lines defining the apostrophe string, then the title.
    let mut lines = run.stdout.lines();
    assert!(lines.next().unwrap().starts_with(".ie "), "{run}");
    assert!(lines.next().unwrap().starts_with(".el "), "{run}");
    assert!(lines.next().unwrap().starts_with(".TH atg 1"), "{run}");
    assert_eq!(
        run.stdout.matches("\n.TH ").count(),
        5,
        "atg, atg-deploy, atg-plugins, atg-completions, atg-man: one page each, not atg-help"
    );
    for expected in [
        "atg\\-deploy",
        "\\-\\-dataplane\\-mode",
        "\\-\\-on\\-conflict",
        "\\-\\-concurrency",
        "Item operations in flight at once",
        "atg\\-plugins",
        "atg\\-completions",
    ] {
        assert!(
            run.stdout.contains(expected),
            "`{expected}` missing from the man page"
        );
    }
}
