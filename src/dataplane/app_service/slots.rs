//! Deployment slots: a slot of the source that the target site lacks is created on the target
//! site's plan and in its location, without content (Terraform does not create slots; both
//! modes create them, since settings and stickiness need them).

use super::{item, Item, Sides, Work, SLOT};
use crate::azure::arm::web::{self, SiteInfo};
use crate::azure::AzureError;
use crate::dataplane::{PlannedAction, PluginError};

/// One item per source slot (created or identical), and the target's slots.
pub(super) async fn plan(
    sides: &Sides,
    target_site: &SiteInfo,
) -> Result<(Vec<Item>, Vec<String>), PluginError> {
    let read = |side: &'static str| {
        move |e: AzureError| PluginError::azure(format!("list the {side} slots"), e)
    };
    let source_slots = web::slots(&sides.source, &sides.source_site)
        .await
        .map_err(read("source"))?;
    let target_slots = web::slots(&sides.target, &sides.target_site)
        .await
        .map_err(read("target"))?;
    let items = source_slots
        .into_iter()
        .map(|slot| {
            if target_slots.contains(&slot) {
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
            }
        })
        .collect();
    Ok((items, target_slots))
}

/// Creates `slot` in the target site.
pub(super) async fn create(sides: &Sides, slot: &str, on: &SiteInfo) -> Result<(), AzureError> {
    web::create_slot(&sides.target, &sides.target_site, slot, on).await
}
