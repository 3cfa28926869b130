//! Deployment slots: a slot of the source that the target site lacks is created on the target
//! site's plan and in its location, without content (Terraform does not create slots; both
//! modes create them, since settings and stickiness need them).

use super::{by_name, item, read_both, Item, Sides, Work, SLOT};
use crate::azure::arm::web::{self, SiteInfo};
use crate::azure::AzureError;
use crate::dataplane::{PlannedAction, PluginError};

/// One item per source slot (created or identical), and the target's slots.
pub(super) async fn plan(
    sides: &Sides,
    target_site: &SiteInfo,
) -> Result<(Vec<Item>, Vec<String>), PluginError> {
    let (source_slots, target_slots) = read_both(
        "slots".into(),
        web::slots(&sides.source, &sides.source_site),
        web::slots(&sides.target, &sides.target_site),
    )
    .await?;
    let items = source_slots
        .into_iter()
        .map(|slot| {
            let decided_from = by_name(&slot, target_slots.contains(&slot));
            let planned = if target_slots.contains(&slot) {
                item(
                    SLOT,
                    slot,
                    PlannedAction::Identical,
                    Vec::new(),
                    Work::Settled,
                )
            } else {
                let work = Work::CreateSlot {
                    slot: slot.clone(),
                    on: target_site.clone(),
                };
                item(SLOT, slot, PlannedAction::Create, Vec::new(), work)
            };
            planned.decided_from(decided_from)
        })
        .collect();
    Ok((items, target_slots))
}

/// Creates `slot` in the target site.
pub(super) async fn create(sides: &Sides, slot: &str, on: &SiteInfo) -> Result<(), AzureError> {
    web::create_slot(&sides.target, &sides.target_site, slot, on).await
}
