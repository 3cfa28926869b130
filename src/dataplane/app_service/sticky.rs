//! Slot-sticky names (`config/slotConfigNames`, site level): the source's names are added to
//! the target's; a name the target marks sticky stays sticky.

use super::{item, read_both, Item, Sides, Work, STICKY_NAMES};
use crate::azure::arm::web::{self, SlotConfigNames};
use crate::dataplane::kit::fingerprint;
use crate::dataplane::{Difference, PlannedAction, PluginError};

/// The one sticky-names item of a site.
pub(super) async fn plan(sides: &Sides) -> Result<Item, PluginError> {
    let (source, target) = read_both(
        "slot-sticky names".into(),
        web::slot_config_names(&sides.source, &sides.source_site),
        web::slot_config_names(&sides.target, &sides.target_site),
    )
    .await?;
    // Names only: no value is in a sticky-names list.
    let shape = |names: &SlotConfigNames| serde_json::to_value(names).unwrap_or_default();
    let decided_from = fingerprint::shapes(&shape(&source), Some(&shape(&target)));
    let merged = union(&source, &target);
    let action = if merged == target {
        PlannedAction::Identical
    } else if target == SlotConfigNames::default() {
        PlannedAction::Create
    } else {
        PlannedAction::compared(vec![Difference::Attributes])
    };
    let work = match action {
        PlannedAction::Identical => Work::Settled,
        _ => Work::StickyNames(merged),
    };
    Ok(item(STICKY_NAMES, "site".into(), action, Vec::new(), work).decided_from(decided_from))
}

/// The target's names, then the source's names the target lacks, per list.
fn union(source: &SlotConfigNames, target: &SlotConfigNames) -> SlotConfigNames {
    let add = |target: &[String], source: &[String]| {
        let mut names = target.to_vec();
        names.extend(source.iter().filter(|name| !target.contains(name)).cloned());
        names
    };
    SlotConfigNames {
        app_setting_names: add(&target.app_setting_names, &source.app_setting_names),
        connection_string_names: add(
            &target.connection_string_names,
            &source.connection_string_names,
        ),
        azure_storage_config_names: add(
            &target.azure_storage_config_names,
            &source.azure_storage_config_names,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sticky_names_are_added_never_removed() {
        let names = |settings: &[&str], strings: &[&str]| SlotConfigNames {
            app_setting_names: settings.iter().map(|s| (*s).to_owned()).collect(),
            connection_string_names: strings.iter().map(|s| (*s).to_owned()).collect(),
            azure_storage_config_names: Vec::new(),
        };
        let merged = union(&names(&["s2", "s4"], &["c2"]), &names(&["mine", "s2"], &[]));
        assert_eq!(merged, names(&["mine", "s2", "s4"], &["c2"]));
        assert_eq!(union(&merged, &merged), merged);
    }
}
