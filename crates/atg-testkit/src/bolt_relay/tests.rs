//! The relay's translations: `PackStream` round trips, element ids stripped, version choice.

use super::packstream::{decode_message, encode_value, Value};
use super::session::{choose_v4, downgrade, NODE, PATH, RECORD};

#[test]
fn packstream_round_trips() {
    let value = Value::Struct(
        NODE,
        vec![
            Value::Int(-17),
            Value::List(vec![Value::String("Resource".into()), Value::Int(70_000)]),
            Value::Map(vec![
                ("p".into(), Value::String("x".repeat(300))),
                ("f".into(), Value::Float(1.5)),
                ("n".into(), Value::Null),
                ("big".into(), Value::Int(i64::MIN)),
                ("neg".into(), Value::Int(-200)),
            ]),
            Value::String("4:abc:1".into()),
        ],
    );
    let bytes = encode_value(&value);
    assert_eq!(decode_message(&bytes).unwrap(), value);
}

#[test]
fn element_ids_are_stripped_from_nodes_in_paths() {
    let node = |id| {
        Value::Struct(
            NODE,
            vec![
                Value::Int(id),
                Value::List(vec![]),
                Value::Map(vec![]),
                Value::String("e".into()),
            ],
        )
    };
    let record = Value::Struct(
        RECORD,
        vec![Value::List(vec![Value::Struct(
            PATH,
            vec![
                Value::List(vec![node(1), node(2)]),
                Value::List(vec![]),
                Value::List(vec![]),
            ],
        )])],
    );
    let Value::Struct(_, fields) = downgrade(record) else {
        panic!()
    };
    let Value::List(items) = &fields[0] else {
        panic!()
    };
    let Value::Struct(PATH, path) = &items[0] else {
        panic!()
    };
    let Value::List(nodes) = &path[0] else {
        panic!()
    };
    assert!(nodes
        .iter()
        .all(|n| matches!(n, Value::Struct(NODE, f) if f.len() == 3)));
}

#[test]
fn the_client_gets_its_newest_4x_version() {
    let mut neo4rs_08 = [0u8; 16];
    neo4rs_08[..8].copy_from_slice(&[0, 0, 1, 4, 0, 0, 0, 4]);
    assert_eq!(choose_v4(&neo4rs_08), Some([0, 0, 1, 4]));
    let mut ranged = [0u8; 16];
    ranged[..8].copy_from_slice(&[0, 0, 0, 5, 0, 2, 4, 4]);
    assert_eq!(choose_v4(&ranged), Some([0, 0, 4, 4]));
    let mut five_only = [0u8; 16];
    five_only[..4].copy_from_slice(&[0, 0, 1, 5]);
    assert_eq!(choose_v4(&five_only), None);
}
