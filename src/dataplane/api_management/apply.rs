//! Writing a service's plan: stage by stage, each entity over the version planning compared.

use async_trait::async_trait;
use serde_json::Value;

use super::entities::{Entity, STAGES};
use super::{Item, Sides};
use crate::azure::arm::apim::{self, Written};
use crate::dataplane::kit::{apply_each, in_slot, settled};
use crate::dataplane::{ApplyPlan, ItemStatus, Job, PlannedAction, PluginContext, PluginError};

/// The plan of one service: its clients and its items.
pub(super) struct ServicePlan {
    pub(super) sides: Sides,
    pub(super) items: Vec<Item>,
}

#[async_trait]
impl ApplyPlan for ServicePlan {
    fn retain(&mut self, keep: &dyn Fn(&str, &str) -> bool) {
        self.items
            .retain(|typed| keep(typed.item.kind, &typed.item.name));
    }

    async fn apply(self: Box<Self>, ctx: &PluginContext, job: &Job) -> Result<(), PluginError> {
        let ServicePlan { sides, items } = *self;
        let sides = &sides;
        let mut stages: Vec<Vec<Item>> = (0..STAGES).map(|_| Vec::new()).collect();
        for item in items {
            let stage = item.detail.stage.min(STAGES - 1);
            stages[stage].push(item);
        }
        let run = |item: Item| in_slot(ctx, item.item.notes.clone(), apply_item(sides, item));
        let concurrency = ctx.item_slots.available_permits().max(1);
        for stage in stages {
            apply_each(ctx, job, stage, concurrency, run).await;
        }
        Ok(())
    }
}

/// Writes one entity. Over an existing one, only when the target's is still as planning saw it,
/// and only over that version (`If-Match` with its `ETag`). A 412 (the answer to a write that
/// landed was lost and the write was sent again, or someone changed the entity in between) is
/// read again: written when the target now holds what atg wrote, else reported.
async fn apply_item(sides: &Sides, item: Item) -> ItemStatus {
    if let Some(status) = settled(&item.item.action) {
        return status;
    }
    let existed = !matches!(item.item.action, PlannedAction::Create);
    let (kind, name) = (item.item.kind, item.item.name);
    let work = item.detail;
    let mut properties = work.properties.clone();
    for (member, value) in &work.secrets {
        properties.insert(
            (*member).to_owned(),
            Value::String(value.expose().to_owned()),
        );
    }
    let body = serde_json::json!({ "properties": properties });
    let (arm, service) = (&sides.target, sides.target_service.as_str());
    let failed = |error: String| ItemStatus::Failed { error };
    let changed = || {
        failed(format!(
            "{kind} {name}: the target's changed since atg compared it: run again to compare anew"
        ))
    };
    // What the target holds now, as compared (ids of the target service).
    let read = || async {
        apim::current(arm, service, &work.path).await.map(|found| {
            found.map(|current| {
                let entity =
                    Entity::new(kind, work.path.clone(), &current.document, service, service);
                (entity, current.etag)
            })
        })
    };
    let etag = if existed {
        match read().await {
            // Compared over what planning saw (a GET may show members a listing leaves out),
            // as planning compares (a policy's re-formatting is no change).
            Ok(Some((entity, etag)))
                if work
                    .seen
                    .as_ref()
                    .is_some_and(|seen| !work.entity(kind, seen).differs_from(&entity)) =>
            {
                Some(etag)
            }
            Ok(_) => return changed(),
            Err(error) => return failed(error.to_string()),
        }
    } else {
        None
    };
    let written = apim::write(
        arm,
        work.method,
        service,
        &work.path,
        &body,
        etag.as_deref(),
    )
    .await;
    match written {
        Ok(Written::Done) => ItemStatus::written(existed, "written"),
        Ok(Written::Stale) => match read().await {
            Ok(Some((entity, _))) if !work.entity(kind, &work.properties).differs_from(&entity) => {
                ItemStatus::written(existed, "written")
            }
            Ok(_) => changed(),
            Err(error) => failed(error.to_string()),
        },
        Err(error) => failed(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use azure_core::http::Method;
    use serde_json::Map;

    use super::super::{entities, item, Work};
    use super::*;
    use crate::azure::arm::fake::{answer, FakeArm};
    use crate::azure::WriteAccess;
    use crate::dataplane::Difference;

    const SERVICE: &str =
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.ApiManagement/service/apim";
    /// The target's backend as planning saw it.
    const SEEN: &str = r#"{"name":"be1","properties":{"url":"https://old"}}"#;
    /// The target's backend holding what atg writes.
    const WRITTEN: &str = r#"{"name":"be1","properties":{"url":"https://b"}}"#;
    /// The target's backend as someone else changed it.
    const OTHER: &str = r#"{"name":"be1","properties":{"url":"https://someone"}}"#;
    const STALE: &str =
        r#"{"error":{"code":"PreconditionFailed","message":"The entity changed."}}"#;

    fn sides(fake: &Arc<FakeArm>) -> Sides {
        Sides {
            source: fake.client(WriteAccess::ReadOnly),
            target: fake.client(WriteAccess::ReadWrite),
            source_service: SERVICE.into(),
            target_service: SERVICE.into(),
        }
    }

    fn url(url: &str) -> Map<String, Value> {
        let mut properties = Map::new();
        properties.insert("url".into(), Value::String(url.into()));
        properties
    }

    fn backend(action: PlannedAction) -> Item {
        let seen = (!matches!(action, PlannedAction::Create)).then(|| url("https://old"));
        item(
            entities::BACKEND,
            "be1".into(),
            action,
            Work {
                path: "backends/be1".into(),
                stage: 1,
                method: Method::Put,
                properties: url("https://b"),
                secrets: Vec::new(),
                seen,
            },
        )
    }

    fn update() -> Item {
        backend(PlannedAction::Overwrite {
            differs: vec![Difference::Attributes],
        })
    }

    /// The `If-Match` of each PUT sent.
    fn put_conditions(fake: &FakeArm) -> Vec<Option<String>> {
        fake.sent()
            .iter()
            .filter(|sent| sent.method == "PUT")
            .map(|sent| sent.header("if-match").map(str::to_owned))
            .collect()
    }

    #[tokio::test]
    async fn an_update_goes_over_the_version_compared_and_a_412_holding_the_write_counts() {
        // The answer to the write was lost, the pipeline sent it again: 412, and the target
        // holds what atg wrote.
        let fake = FakeArm::new(vec![
            answer(200, &[("etag", "\"v1\"")], SEEN),
            answer(412, &[], STALE),
            answer(200, &[("etag", "\"v2\"")], WRITTEN),
        ]);
        let status = apply_item(&sides(&fake), update()).await;
        assert!(
            matches!(status, ItemStatus::Overwritten { .. }),
            "{status:?}"
        );
        assert_eq!(put_conditions(&fake), [Some("\"v1\"".to_owned())]);
    }

    #[tokio::test]
    async fn a_target_read_with_members_its_listing_left_out_is_as_planning_saw_it() {
        const FULLER: &str = r#"{"name":"be1","properties":{"url":"https://old","type":"Single"}}"#;
        let fake = FakeArm::new(vec![
            answer(200, &[("etag", "\"v1\"")], FULLER),
            answer(200, &[("etag", "\"v2\"")], WRITTEN),
        ]);
        let status = apply_item(&sides(&fake), update()).await;
        assert!(
            matches!(status, ItemStatus::Overwritten { .. }),
            "{status:?}"
        );
        assert_eq!(put_conditions(&fake), [Some("\"v1\"".to_owned())]);
    }

    #[tokio::test]
    async fn a_target_changed_by_someone_else_is_reported_never_overwritten() {
        // Changed between planning and applying: nothing is written.
        let fake = FakeArm::new(vec![answer(200, &[("etag", "\"v2\"")], OTHER)]);
        let status = apply_item(&sides(&fake), update()).await;
        assert!(
            matches!(&status, ItemStatus::Failed { error } if error.contains("changed since atg compared it")),
            "{status:?}"
        );
        assert_eq!(put_conditions(&fake), Vec::<Option<String>>::new());
        // Changed during the write (412, and the target holds another's change): not retried.
        let fake = FakeArm::new(vec![
            answer(200, &[("etag", "\"v1\"")], SEEN),
            answer(412, &[], STALE),
            answer(200, &[("etag", "\"v2\"")], OTHER),
        ]);
        let status = apply_item(&sides(&fake), update()).await;
        assert!(matches!(&status, ItemStatus::Failed { .. }), "{status:?}");
        assert_eq!(put_conditions(&fake), [Some("\"v1\"".to_owned())]);
    }

    #[tokio::test]
    async fn a_creation_has_no_condition_and_reads_nothing_after_a_201() {
        // A 201 without an operation header or a provisioning state is done: nothing is read
        // after it (a product link has no GET).
        let fake = FakeArm::new(vec![answer(201, &[("etag", "\"v1\"")], WRITTEN)]);
        let status = apply_item(&sides(&fake), backend(PlannedAction::Create)).await;
        assert!(matches!(status, ItemStatus::Created { .. }), "{status:?}");
        assert_eq!(put_conditions(&fake), [None]);
        assert_eq!(fake.sent().len(), 1, "{:#?}", fake.sent());
    }
}
