//! Service Bus end to end, beyond the conformance suite: forwarding order, properties fixed at
//! creation, the `$Default` rule, and authorization rule keys, read back with the plain ARM
//! client (not atg's).

use serde_json::{json, Value};

use crate::conformance::messaging::{key, MessagingWorld};
use crate::conformance::service_bus::SERVICE_BUS;
use crate::conformance::Target;
use crate::plan::{apply_a_fresh_plan, apply_plan, assert_not_written, assert_stale, make_plan};

/// Replicates the world's source into the replica target with `args`; answers the report's
/// entry of the pair and the run's output.
async fn replicate(world: &MessagingWorld, mode: &str, args: &[&str]) -> (Value, String) {
    let inventory = world.pairs_inventory(&[(world.source_id(), world.target_id(Target::Replica))]);
    let mut all = vec!["--dataplane-mode", mode, "--output", "json", "-vv"];
    all.extend_from_slice(args);
    let run = world.stack.deploy(&inventory, &all).await;
    let report = run.report();
    let output = format!("{}\n{}", run.stdout, run.stderr);
    (report["resources"][0].clone(), output)
}

use crate::common::resource_item as item;

#[tokio::test]
async fn forwarding_targets_are_created_before_the_entities_forwarding_to_them() {
    let world = MessagingWorld::start(&SERVICE_BUS).await;
    // By name, the forwarders come first: only the plan's order creates their targets first.
    world
        .seed_entities(&[
            ("topics/z-events", json!({})),
            ("queues/z-sink", json!({})),
            (
                "queues/a-forwarder",
                json!({ "properties": { "forwardTo": "z-sink", "forwardDeadLetteredMessagesTo": "z-events" } }),
            ),
            (
                "topics/z-events/subscriptions/a-sub",
                json!({ "properties": { "forwardTo": "a-forwarder" } }),
            ),
        ])
        .await;
    let (resource, _) = replicate(&world, "replication", &["--concurrency", "1"]).await;
    assert_eq!(resource["status"], "succeeded", "{resource:#}");
    let target = world.target_id(Target::Replica);
    let forwarder = world
        .arm
        .get(&format!("{target}/queues/a-forwarder"))
        .await
        .unwrap();
    assert_eq!(forwarder["properties"]["forwardTo"], "z-sink");
    assert_eq!(
        forwarder["properties"]["forwardDeadLetteredMessagesTo"],
        "z-events"
    );
    let subscription = world
        .arm
        .get(&format!("{target}/topics/z-events/subscriptions/a-sub"))
        .await
        .unwrap();
    assert_eq!(subscription["properties"]["forwardTo"], "a-forwarder");
}

#[tokio::test]
async fn properties_fixed_at_creation_that_differ_are_reported_never_forced() {
    let world = MessagingWorld::start(&SERVICE_BUS).await;
    let (source, target) = (world.source_id(), world.target_id(Target::Replica));
    world
        .arm
        .put(
            &format!("{source}/queues/orders"),
            &json!({ "properties": { "requiresSession": true, "maxDeliveryCount": 4 } }),
        )
        .await;
    world
        .arm
        .put(
            &format!("{source}/queues/audit"),
            &json!({ "properties": { "requiresDuplicateDetection": true } }),
        )
        .await;
    // Terraform made them in the target with other fixed properties.
    world
        .arm
        .put(&format!("{target}/queues/orders"), &json!({}))
        .await;
    world
        .arm
        .put(&format!("{target}/queues/audit"), &json!({}))
        .await;

    let (resource, _) = replicate(&world, "replication", &[]).await;
    let orders = item(&resource, "queue", "queues/orders");
    assert_eq!(orders["outcome"], "partial", "{orders}");
    let reason = orders["reason"].as_str().unwrap();
    assert!(
        reason.contains("requiresSession (true in the source, false in the target)")
            && reason.contains("cannot change after creation"),
        "{reason}"
    );
    let audit = item(&resource, "queue", "queues/audit");
    assert_eq!(audit["outcome"], "skipped", "{audit}");
    assert!(
        audit["reason"]
            .as_str()
            .unwrap()
            .contains("requiresDuplicateDetection"),
        "{audit}"
    );
    let held = world
        .arm
        .get(&format!("{target}/queues/orders"))
        .await
        .unwrap();
    assert_eq!(
        held["properties"]["requiresSession"], false,
        "forced: {held}"
    );
    assert_eq!(
        held["properties"]["maxDeliveryCount"], 4,
        "not copied: {held}"
    );

    // A re-run reports the same and writes nothing.
    world.stack.emulator.clear_requests();
    let (again, _) = replicate(&world, "replication", &[]).await;
    assert_eq!(item(&again, "queue", "queues/audit")["outcome"], "skipped");
    assert_eq!(
        item(&again, "queue", "queues/orders")["outcome"],
        "skipped",
        "{again:#}"
    );
    assert_eq!(world.writes_to(&target), Vec::<String>::new());
}

#[tokio::test]
async fn the_default_rule_is_matched_not_written_again() {
    let world = MessagingWorld::start(&SERVICE_BUS).await;
    let source = world.source_id();
    world
        .arm
        .put(&format!("{source}/topics/t"), &json!({}))
        .await;
    world
        .arm
        .put(
            &format!("{source}/topics/t/subscriptions/as-created"),
            &json!({}),
        )
        .await;
    world
        .arm
        .put(
            &format!("{source}/topics/t/subscriptions/filtered"),
            &json!({}),
        )
        .await;
    // The source changed one subscription's $Default rule: that one is written over the
    // service's default.
    world
        .arm
        .put(
            &format!("{source}/topics/t/subscriptions/filtered/rules/$Default"),
            &json!({ "properties": { "filterType": "SqlFilter", "sqlFilter": { "sqlExpression": "region = 'eu'", "compatibilityLevel": 20 }, "action": {} } }),
        )
        .await;
    world.stack.emulator.clear_requests();
    let (resource, _) = replicate(&world, "template", &[]).await;
    assert_eq!(resource["status"], "succeeded", "{resource:#}");
    let kept = item(
        &resource,
        "rule",
        "topics/t/subscriptions/as-created/rules/$Default",
    );
    assert_eq!(kept["outcome"], "identical", "{kept}");
    let written = item(
        &resource,
        "rule",
        "topics/t/subscriptions/filtered/rules/$Default",
    );
    assert_eq!(written["outcome"], "overwritten", "{written}");
    let target = world.target_id(Target::Replica);
    let default_writes: Vec<String> = world
        .writes_to(&target)
        .into_iter()
        .filter(|w| w.contains("/rules/"))
        .collect();
    assert_eq!(default_writes.len(), 1, "{default_writes:#?}");
    for subscription in ["as-created", "filtered"] {
        let rules = world
            .arm
            .list(&format!(
                "{target}/topics/t/subscriptions/{subscription}/rules"
            ))
            .await;
        assert_eq!(rules.len(), 1, "{subscription}: {rules:#?}");
    }
    let filtered = world
        .arm
        .get(&format!(
            "{target}/topics/t/subscriptions/filtered/rules/$Default"
        ))
        .await
        .unwrap();
    assert_eq!(
        filtered["properties"]["sqlFilter"]["sqlExpression"],
        "region = 'eu'"
    );
}

#[tokio::test]
async fn replication_sets_each_rules_keys_to_the_sources_and_template_makes_new_ones() {
    let world = MessagingWorld::start(&SERVICE_BUS).await;
    let (source, target) = (world.source_id(), world.target_id(Target::Replica));
    world
        .arm
        .put(&format!("{source}/queues/q"), &json!({}))
        .await;
    let rules = [
        "authorizationRules/RootManageSharedAccessKey".to_owned(),
        "authorizationRules/app".to_owned(),
        "queues/q/authorizationRules/reader".to_owned(),
    ];
    let mut secrets = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        let id = format!("{source}/{rule}");
        if index > 0 {
            world
                .arm
                .put(&id, &json!({ "properties": { "rights": ["Listen"] } }))
                .await;
        }
        let (primary, secondary) = (key(&format!("p{index}")), key(&format!("s{index}")));
        world.arm.set_key(&id, "PrimaryKey", &primary).await;
        world.arm.set_key(&id, "SecondaryKey", &secondary).await;
        secrets.extend([primary, secondary]);
    }

    let (template, output) = replicate(&world, "template", &[]).await;
    assert_eq!(template["status"], "succeeded", "{template:#}");
    for rule in &rules {
        let (s, t) = (
            world.arm.keys(&format!("{source}/{rule}")).await,
            world.arm.keys(&format!("{target}/{rule}")).await,
        );
        assert!(t[0].is_string() && t[1].is_string(), "{rule}: {t}");
        assert_ne!(s[0], t[0], "template copied {rule}'s primary key");
        assert_ne!(s[1], t[1], "template copied {rule}'s secondary key");
    }
    let mut outputs = vec![output];

    let (replication, output) = replicate(&world, "replication", &[]).await;
    assert_eq!(replication["status"], "succeeded", "{replication:#}");
    outputs.push(output);
    for rule in &rules {
        assert_eq!(
            world.arm.keys(&format!("{source}/{rule}")).await,
            world.arm.keys(&format!("{target}/{rule}")).await,
            "{rule}: the keys differ"
        );
    }
    let root = item(
        &replication,
        "authorization-rule",
        "authorizationRules/RootManageSharedAccessKey",
    );
    assert_eq!(root["outcome"], "overwritten", "{root}");

    world.stack.emulator.clear_requests();
    let (again, output) = replicate(&world, "replication", &[]).await;
    outputs.push(output);
    assert_eq!(again["counts"]["replicated"], 0, "{again:#}");
    assert_eq!(world.writes_to(&target), Vec::<String>::new());
    for output in &outputs {
        for secret in &secrets {
            assert!(!output.contains(secret.as_str()), "a key in the output");
        }
    }
}

#[tokio::test]
async fn a_default_rule_the_source_deleted_is_deleted_where_atg_created_the_subscription_and_reported_elsewhere(
) {
    let world = MessagingWorld::start(&SERVICE_BUS).await;
    let eu_rule = json!({ "properties": { "filterType": "SqlFilter", "sqlFilter": { "sqlExpression": "region = 'eu'" }, "action": {} } });
    world
        .seed_entities(&[
            ("topics/t", json!({})),
            ("topics/t/subscriptions/eu-only", json!({})),
            ("topics/t/subscriptions/eu-only/rules/eu", eu_rule.clone()),
            ("topics/t/subscriptions/kept", json!({})),
            ("topics/t/subscriptions/kept/rules/eu", eu_rule),
        ])
        .await;
    let source = world.source_id();
    for subscription in ["eu-only", "kept"] {
        let (status, _) = world
            .arm
            .send(
                reqwest::Method::DELETE,
                &format!("{source}/topics/t/subscriptions/{subscription}/rules/$Default"),
                None,
            )
            .await;
        assert_eq!(status, 200);
    }
    // The target already holds `kept` (the service gave it a $Default rule): not atg's to delete.
    let target = world.target_id(Target::Replica);
    world
        .arm
        .put(&format!("{target}/topics/t"), &json!({}))
        .await;
    world
        .arm
        .put(&format!("{target}/topics/t/subscriptions/kept"), &json!({}))
        .await;

    let (resource, _) = replicate(&world, "replication", &[]).await;
    let rule_names = |subscription: &'static str| {
        let world = &world;
        let target = target.clone();
        async move {
            let mut names: Vec<String> = world
                .arm
                .list(&format!(
                    "{target}/topics/t/subscriptions/{subscription}/rules"
                ))
                .await
                .iter()
                .map(|rule| rule["name"].as_str().unwrap().to_owned())
                .collect();
            names.sort();
            names
        }
    };
    // Created by atg: the service's $Default is deleted once the source's rule is written, so
    // the subscription filters as the source's does.
    let created = item(
        &resource,
        "rule",
        "topics/t/subscriptions/eu-only/rules/$Default",
    );
    assert_eq!(created["outcome"], "overwritten", "{created}");
    assert!(
        created["action"].as_str().unwrap().starts_with("deleted"),
        "{created}"
    );
    assert_eq!(rule_names("eu-only").await, ["eu"]);
    // Held by the target before the run: reported, never deleted.
    let kept = item(
        &resource,
        "rule",
        "topics/t/subscriptions/kept/rules/$Default",
    );
    assert_eq!(kept["outcome"], "skipped", "{kept}");
    assert!(
        kept["reason"]
            .as_str()
            .unwrap()
            .contains("atg never deletes"),
        "{kept}"
    );
    assert_eq!(rule_names("kept").await, ["$Default", "eu"]);
    for subscription in ["eu-only", "kept"] {
        assert_eq!(
            item(
                &resource,
                "rule",
                &format!("topics/t/subscriptions/{subscription}/rules/eu")
            )["outcome"],
            "created"
        );
    }
}

#[tokio::test]
async fn writes_refused_while_a_related_write_is_in_progress_are_sent_again() {
    let world = MessagingWorld::start(&SERVICE_BUS).await;
    let rule = json!({ "properties": { "filterType": "SqlFilter", "sqlFilter": { "sqlExpression": "1=1" }, "action": {} } });
    let mut entities = vec![("topics/t".to_owned(), json!({}))];
    for n in 0..4 {
        entities.push((format!("topics/t/subscriptions/s{n}"), json!({})));
        entities.push((
            format!("topics/t/subscriptions/s{n}/rules/r{n}"),
            rule.clone(),
        ));
    }
    entities.push((
        "topics/t/authorizationRules/send".to_owned(),
        json!({ "properties": { "rights": ["Send"] } }),
    ));
    let entities: Vec<(&str, Value)> = entities
        .iter()
        .map(|(path, body)| (path.as_str(), body.clone()))
        .collect();
    world.seed_entities(&entities).await;
    // Azure's answer to a write of a topic's child while another is in progress: each write of
    // one is refused twice before it takes effect.
    world
        .stack
        .emulator
        .set_options(|options| options.messaging_conflicts = 2);

    let (resource, output) = replicate(&world, "replication", &[]).await;
    assert_eq!(resource["status"], "succeeded", "{resource:#}\n{output}");
    let target = world.target_id(Target::Replica);
    let refused = world
        .stack
        .requests()
        .iter()
        .filter(|r| r.status == Some(409) && r.path.contains("/topics/t/"))
        .count();
    // Twice each: 4 subscriptions, their 4 rules and the topic's authorization rule.
    assert_eq!(refused, 2 * 9);
    for n in 0..4 {
        let rules = world
            .arm
            .list(&format!("{target}/topics/t/subscriptions/s{n}/rules"))
            .await;
        let mut names: Vec<&str> = rules.iter().map(|r| r["name"].as_str().unwrap()).collect();
        names.sort_unstable();
        assert_eq!(names, ["$Default", &format!("r{n}")], "s{n}");
    }
    assert_eq!(
        world
            .arm
            .keys(&format!(
                "{}/topics/t/authorizationRules/send",
                world.source_id()
            ))
            .await,
        world
            .arm
            .keys(&format!("{target}/topics/t/authorizationRules/send"))
            .await
    );
}

#[tokio::test]
async fn verify_passes_a_replica_and_names_a_changed_queue_and_an_extra_one() {
    let world = MessagingWorld::start(&SERVICE_BUS).await;
    let seed = crate::conformance::service_bus::seed();
    let entities: Vec<(&str, Value)> = seed.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    world.seed_entities(&entities).await;
    let (resource, _) = replicate(&world, "replication", &[]).await;
    assert_eq!(resource["status"], "succeeded", "{resource:#}");
    let inventory = world.pairs_inventory(&[(world.source_id(), world.target_id(Target::Replica))]);
    let verify = |args: Vec<String>| async move {
        let mut all = args;
        all[0] = "verify".into();
        crate::common::atg(&all, &crate::common::TARGET_PRINCIPAL).await
    };
    let args = || {
        world.stack.deploy_args(
            &inventory,
            &["--dataplane-mode", "replication", "--output", "json"],
        )
    };
    let exact = verify(args()).await;
    assert_eq!(exact.code, 0, "{exact}");
    assert_eq!(exact.report()["totals"]["fidelity"], 1.0, "{exact}");

    let target = world.target_id(Target::Replica);
    world
        .arm
        .put(
            &format!("{target}/queues/q-plain"),
            &json!({ "properties": { "lockDuration": "PT2M", "maxDeliveryCount": 1, "deadLetteringOnMessageExpiration": true } }),
        )
        .await;
    world
        .arm
        .put(&format!("{target}/queues/own"), &json!({}))
        .await;
    world.stack.emulator.clear_requests();
    let damaged = verify(args()).await;
    assert_ne!(damaged.code, 0, "{damaged}");
    let report = damaged.report();
    let resource = &report["resources"][0];
    assert_eq!(
        item(resource, "queue", "queues/q-plain")["verdict"],
        "different"
    );
    assert_eq!(item(resource, "queue", "queues/own")["verdict"], "extra");
    assert_eq!(world.writes_to(&target), Vec::<String>::new());
}

#[tokio::test]
async fn a_plan_refuses_an_entity_changed_in_the_source_since_and_applies_the_rest() {
    let world = MessagingWorld::start(&SERVICE_BUS).await;
    let (source, target) = (world.source_id(), world.target_id(Target::Replica));
    world
        .seed_entities(&[
            (
                "queues/orders",
                json!({ "properties": { "maxDeliveryCount": 5 } }),
            ),
            (
                "queues/audit",
                json!({ "properties": { "maxDeliveryCount": 3 } }),
            ),
        ])
        .await;
    let inventory = world.pairs_inventory(&[(source.clone(), target.clone())]);
    let plan = world.stack.path("plan.json");
    make_plan(&world.stack, &inventory, &plan).await;

    // After the review, a compared property of one queue changes in the source: its decision
    // (create) stays the same, what it was made from does not.
    world
        .arm
        .put(
            &format!("{source}/queues/orders"),
            &json!({ "properties": { "maxDeliveryCount": 7 } }),
        )
        .await;
    world.stack.emulator.clear_requests();
    let (apply, report) = apply_plan(&world.stack, &inventory, &plan).await;
    assert_eq!(apply.code, 1, "{apply}");
    let resource = &report["resources"][0];
    assert_stale(item(resource, "queue", "queues/orders"));
    assert_eq!(
        item(resource, "queue", "queues/audit")["outcome"],
        "created"
    );
    assert_not_written(&world.writes_to(&target), "/queues/orders");
    assert!(world
        .arm
        .get(&format!("{target}/queues/orders"))
        .await
        .is_none());

    // A plan made now, and not changed since, is carried out whole.
    let report = apply_a_fresh_plan(&world.stack, &inventory).await;
    let resource = &report["resources"][0];
    assert_eq!(
        item(resource, "queue", "queues/orders")["outcome"],
        "created"
    );
    let orders = world
        .arm
        .get(&format!("{target}/queues/orders"))
        .await
        .unwrap();
    assert_eq!(orders["properties"]["maxDeliveryCount"], 7, "{orders}");
}
