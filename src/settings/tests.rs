//! Flags and environment into settings: every refusal and default.

use super::*;

fn parse(args: &[&str]) -> DeployArgs {
    let mut command_line = vec!["atg", "deploy"];
    command_line.extend_from_slice(args);
    match crate::cli::Cli::try_parse_noting_sources(command_line)
        .unwrap()
        .command
    {
        crate::cli::Command::Deploy(args) => *args,
        _ => unreachable!(),
    }
}

#[test]
fn explicit_mode_wins_then_interactive_asks_then_template() {
    assert_eq!(
        choose_mode(Some(Mode::Replication), true, true),
        ModeChoice::Explicit(Mode::Replication)
    );
    assert_eq!(choose_mode(None, true, true), ModeChoice::Ask);
    assert_eq!(choose_mode(None, true, false), ModeChoice::Default);
    assert_eq!(choose_mode(None, false, true), ModeChoice::Default);
}

#[test]
fn default_mode_is_template() {
    let args = parse(&["--inventory", "x.json"]);
    let settings =
        DeploySettings::from_args(&args, CredentialEnvironment::default(), false).unwrap();
    assert_eq!(settings.run.mode, Mode::Template);
    assert!(!settings.run.dry_run);
}

#[test]
fn a_partial_service_principal_is_refused() {
    let args = parse(&["--inventory", "x.json", "--sp-client-id", "abc"]);
    let error = DeploySettings::from_args(&args, CredentialEnvironment::default(), false)
        .err()
        .unwrap();
    assert!(
        error.message.contains("--sp-client-secret, --sp-tenant-id"),
        "{}",
        error.message
    );
}

#[test]
fn the_target_principal_serves_the_source_unless_it_has_its_own() {
    let args = parse(&[
        "--inventory",
        "x.json",
        "--sp-client-id",
        "t-app",
        "--sp-client-secret",
        "t-secret",
        "--sp-tenant-id",
        "t-tenant",
    ]);
    let settings =
        DeploySettings::from_args(&args, CredentialEnvironment::default(), false).unwrap();
    assert_eq!(
        settings
            .source_credentials
            .explicit
            .as_ref()
            .unwrap()
            .client_id,
        "t-app"
    );
    let args = parse(&[
        "--inventory",
        "x.json",
        "--sp-client-id",
        "t-app",
        "--sp-client-secret",
        "t-secret",
        "--sp-tenant-id",
        "t-tenant",
        "--source-sp-client-id",
        "s-app",
        "--source-sp-client-secret",
        "s-secret",
        "--source-sp-tenant-id",
        "s-tenant",
    ]);
    let settings =
        DeploySettings::from_args(&args, CredentialEnvironment::default(), false).unwrap();
    assert_eq!(
        settings
            .source_credentials
            .explicit
            .as_ref()
            .unwrap()
            .tenant_id,
        "s-tenant"
    );
    assert_eq!(
        settings
            .target_credentials
            .explicit
            .as_ref()
            .unwrap()
            .tenant_id,
        "t-tenant"
    );
}

#[test]
fn the_graph_needs_a_password_and_targets_and_excludes_an_inventory() {
    let error = |args: &[&str]| {
        DeploySettings::from_args(&parse(args), CredentialEnvironment::default(), false)
            .err()
            .map(|e| (e.message, e.hint.unwrap_or_default()))
            .unwrap()
    };
    let (message, hint) = error(&["--neo4j-uri", "bolt://x:7687", "--iac-dir", "."]);
    assert_eq!(message, "no Neo4j password");
    assert!(hint.contains("NEO4J_PASSWORD"));
    let (message, hint) = error(&["--neo4j-uri", "bolt://x:7687", "--neo4j-password", "p"]);
    assert_eq!(message, "no targets for the graph's resources");
    assert!(hint.contains("--iac-dir"));
    let (message, _) = error(&["--inventory", "x.json", "--iac-dir", "."]);
    assert_eq!(
        message,
        "two sources of resources: --inventory and --iac-dir"
    );
    let (message, _) = error(&["--inventory", "x.json", "--neo4j-uri", "bolt://x:7687"]);
    assert_eq!(
        message,
        "two sources of resources: --inventory and --neo4j-uri"
    );
    let (message, _) = error(&["--iac-dir", ".", "--mappings", "m.json"]);
    assert_eq!(message, "--iac-dir, --mappings need ATG's graph");
}

#[test]
fn a_graph_source_needs_its_subscription_and_name_mappings_need_the_graph() {
    let error = |args: &[&str]| {
        DeploySettings::from_args(&parse(args), CredentialEnvironment::default(), false)
            .err()
            .map(|e| (e.message, e.hint.unwrap_or_default()))
            .unwrap()
    };
    let graph = ["--neo4j-uri", "bolt://x:7687", "--neo4j-password", "p"];
    for targets in [["--iac-dir", "."], ["--target-subscription", "t"]] {
        let mut args = graph.to_vec();
        args.extend(targets);
        let (message, hint) = error(&args);
        assert_eq!(message, "the graph's resources need --source-subscription");
        assert!(hint.contains("the target's too"), "{hint}");
    }
    let mut args = graph.to_vec();
    args.extend(["--source-subscription", "s", "--target-subscription", "S"]);
    let (message, _) = error(&args);
    assert!(message.starts_with("targets from the graph need a --source-subscription other"));
    let (message, _) = error(&["--name-mappings", "n.json"]);
    assert_eq!(message, "--name-mappings need ATG's graph");
    let mut args = graph.to_vec();
    args.extend([
        "--source-subscription",
        "s",
        "--target-subscription",
        "t",
        "--name-mappings",
        "/nonexistent/name_mappings.json",
    ]);
    let (message, _) = error(&args);
    assert_eq!(
        message,
        "--name-mappings `/nonexistent/name_mappings.json` is not a file"
    );
}

#[test]
fn the_database_and_name_mappings_reach_the_graph_inventory() {
    let file = std::env::temp_dir().join(format!("atg-nm-{}.json", std::process::id()));
    std::fs::write(&file, "{}").unwrap();
    let args = parse(&[
        "--neo4j-uri",
        "bolt://x:7687",
        "--neo4j-password",
        "p",
        "--neo4j-database",
        "tenantgraph",
        "--source-subscription",
        "s",
        "--target-subscription",
        "t",
        "--name-mappings",
        &file.display().to_string(),
    ]);
    let settings =
        DeploySettings::from_args(&args, CredentialEnvironment::default(), false).unwrap();
    let _ = std::fs::remove_file(&file);
    let ResourceSource::Graph(graph) = settings.resources else {
        panic!("expected the graph");
    };
    assert_eq!(graph.graph.database.as_deref(), Some("tenantgraph"));
    assert_eq!(graph.name_mappings.as_deref(), Some(file.as_path()));
}

#[test]
fn the_graph_with_an_iac_dir_is_a_resource_source() {
    let args = parse(&[
        "--neo4j-uri",
        "bolt://x:7687",
        "--neo4j-password",
        "p",
        "--iac-dir",
        ".",
        "--source-subscription",
        "s",
    ]);
    let settings =
        DeploySettings::from_args(&args, CredentialEnvironment::default(), false).unwrap();
    let ResourceSource::Graph(graph) = settings.resources else {
        panic!("expected the graph");
    };
    assert_eq!(graph.graph.user, "neo4j");
    assert_eq!(graph.source_subscription.as_deref(), Some("s"));
    assert!(graph.types.iter().any(|t| t == "Microsoft.KeyVault/vaults"));
    assert!(graph
        .types
        .iter()
        .any(|t| t == "Microsoft.DocumentDB/databaseAccounts"));
    assert!(!format!("{:?}", graph.graph).contains("\"p\""));
}

#[test]
fn no_inventory_is_a_clear_error() {
    let args = parse(&[]);
    let error = DeploySettings::from_args(&args, CredentialEnvironment::default(), false)
        .err()
        .unwrap();
    assert!(error.message.contains("no inventory"));
    assert!(error.hint.unwrap().contains("--inventory"));
}
