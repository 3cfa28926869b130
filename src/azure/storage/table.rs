//! Table service operations atg uses: listing and creating tables, access policies, querying
//! entities one page at a time with their property types (`@odata.type` annotations, full
//! metadata), and entity group transactions (`$batch`, one partition, ≤ 100 operations).

use std::fmt::Write as _;

use azure_core::http::Method;
use serde_json::{Map, Value};

use super::xml::{self, SignedIdentifier};
use super::{StorageClient, StorageResponse};
use crate::azure::error::{AzureError, AzureErrorKind};

/// Most operations in one entity group transaction.
pub const MAX_BATCH: usize = 100;
/// Largest body of one transaction (the service's limit is 4 MiB).
pub const MAX_BATCH_BYTES: usize = 3 * 1024 * 1024;

const FULL_METADATA: &str = "application/json;odata=fullmetadata";
const NO_METADATA: &str = "application/json;odata=nometadata";
const ODATA_TYPE: &str = "@odata.type";
const EDM_DOUBLE: &str = "Edm.Double";

/// `{"odata.error":{"code":..,"message":{"value":..}}}`.
#[allow(clippy::type_complexity)]
pub(super) fn json_error(body: &[u8]) -> Option<(Option<String>, Option<String>)> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let error = value.get("odata.error")?;
    Some((
        error.get("code").and_then(Value::as_str).map(str::to_owned),
        error
            .pointer("/message/value")
            .and_then(Value::as_str)
            .map(str::to_owned),
    ))
}

/// An entity's properties as the service stores them: keys, values and `@odata.type`
/// annotations, without the service's own fields (`odata.*`, `Timestamp`).
#[derive(Clone, Debug, PartialEq)]
pub struct Entity {
    pub partition_key: String,
    pub row_key: String,
    pub timestamp: Option<String>,
    pub properties: Map<String, Value>,
}

impl Entity {
    pub fn from_json(mut value: Map<String, Value>) -> Option<Entity> {
        let partition_key = value.get("PartitionKey")?.as_str()?.to_owned();
        let row_key = value.get("RowKey")?.as_str()?.to_owned();
        let timestamp = value
            .get("Timestamp")
            .and_then(Value::as_str)
            .map(str::to_owned);
        value.retain(|key, _| {
            !key.starts_with("odata.") && key != "Timestamp" && key != "Timestamp@odata.type"
        });
        exact_types(&mut value);
        Some(Entity {
            partition_key,
            row_key,
            timestamp,
            properties: value,
        })
    }

    /// Whether both hold the same properties with the same types and values, doubles bit for
    /// bit (`0.0` and `-0.0` differ).
    pub fn same_properties(&self, other: &Entity) -> bool {
        self.properties.len() == other.properties.len()
            && self.properties.iter().all(|(key, value)| {
                other
                    .properties
                    .get(key)
                    .is_some_and(|theirs| same_value(value, theirs))
            })
    }

    /// Order of entities in a table: partition key, then row key.
    pub fn key(&self) -> (&str, &str) {
        (&self.partition_key, &self.row_key)
    }
}

fn same_value(ours: &Value, theirs: &Value) -> bool {
    match (ours, theirs) {
        (Value::Number(a), Value::Number(b)) if a.is_f64() || b.is_f64() => {
            a.is_f64() == b.is_f64() && a.as_f64().map(f64::to_bits) == b.as_f64().map(f64::to_bits)
        }
        _ => ours == theirs,
    }
}

/// Gives every property its exact EDM type, as the official SDKs write it: `Edm.Double` is
/// always annotated (a whole-number double such as `2500.0` would otherwise be stored as an
/// Int32), Int64, `DateTime`, Guid and Binary keep their annotations, and String, Boolean and
/// Int32 go without (explicit `Edm.String` annotations are dropped, so both sides compare the
/// same whatever metadata level the service chose).
///
/// With full metadata the service leaves Double unannotated and writes it with a decimal point
/// or an exponent (`2500.0`), which `serde_json` keeps apart from an integer (`2500`, an Int32):
/// that text form is what tells them apart. `serde_json`'s `float_roundtrip` feature (set in
/// Cargo.toml) parses every double to the exact nearest value, and its shortest round-trip
/// output writes it back to the same bits. A double the service annotated but wrote without a
/// decimal point becomes a float again, so it is written `2500.0`.
fn exact_types(properties: &mut Map<String, Value>) {
    let names: Vec<String> = properties
        .keys()
        .filter(|key| !key.ends_with(ODATA_TYPE))
        .cloned()
        .collect();
    for name in names {
        let annotation = format!("{name}{ODATA_TYPE}");
        let declared = properties.get(&annotation).and_then(Value::as_str);
        match (declared, properties.get(&name)) {
            (Some("Edm.String"), _) => {
                properties.remove(&annotation);
            }
            (Some(EDM_DOUBLE), Some(Value::Number(number))) => {
                if let Some(float) = number.as_f64().and_then(serde_json::Number::from_f64) {
                    properties.insert(name, Value::Number(float));
                }
            }
            (None, Some(Value::Number(number))) if number.is_f64() => {
                properties.insert(annotation, Value::String(EDM_DOUBLE.into()));
            }
            _ => {}
        }
    }
}

/// One page of a table query and the continuation.
#[derive(Debug)]
pub struct EntityPage {
    pub entities: Vec<Entity>,
    pub next: Option<(String, String)>,
}

/// One operation of an entity group transaction.
#[derive(Clone, Debug)]
pub enum EntityWrite {
    /// Insert Entity: fails if it exists.
    Insert(Entity),
    /// Insert Or Replace Entity.
    Replace(Entity),
}

impl EntityWrite {
    pub fn entity(&self) -> &Entity {
        match self {
            EntityWrite::Insert(entity) | EntityWrite::Replace(entity) => entity,
        }
    }
}

/// Why a transaction failed: the service's status, error and the failing operation's index.
#[derive(Debug)]
pub struct BatchFailure {
    pub index: Option<usize>,
    pub error: AzureError,
}

fn key_literal(key: &str) -> String {
    key.replace('\'', "''")
}

/// `table(PartitionKey='..',RowKey='..')`, the path segment of one entity.
fn entity_segment(table: &str, partition_key: &str, row_key: &str) -> String {
    format!(
        "{table}(PartitionKey='{}',RowKey='{}')",
        key_literal(partition_key),
        key_literal(row_key)
    )
}

impl StorageClient {
    pub async fn list_tables(
        &self,
        next: Option<&str>,
    ) -> Result<(Vec<String>, Option<String>), AzureError> {
        let mut query = Vec::new();
        if let Some(next) = next {
            query.push(("NextTableName", next));
        }
        let response = self
            .send(
                Method::Get,
                self.url(&["Tables"], &query),
                &[("accept", NO_METADATA.to_owned())],
                None,
            )
            .await?
            .success()?;
        let body: Value = serde_json::from_slice(&response.body).map_err(|e| {
            AzureError::new(
                AzureErrorKind::Other,
                format!("could not read the table list: {e}"),
            )
        })?;
        let names = body
            .get("value")
            .and_then(Value::as_array)
            .map(|tables| {
                tables
                    .iter()
                    .filter_map(|t| t.get("TableName").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let next = response
            .header("x-ms-continuation-nexttablename")
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        Ok((names, next))
    }

    /// Creates a table. `Ok(false)` when it already exists.
    pub async fn create_table(&self, table: &str) -> Result<bool, AzureError> {
        let body = serde_json::json!({ "TableName": table }).to_string();
        let response = self
            .send(
                Method::Post,
                self.url(&["Tables"], &[]),
                &[
                    ("content-type", "application/json".to_owned()),
                    ("accept", NO_METADATA.to_owned()),
                    ("prefer", "return-no-content".to_owned()),
                ],
                Some(body.into_bytes()),
            )
            .await?;
        if response.status == 409 {
            return Ok(false);
        }
        response.success().map(|_| true)
    }

    /// Stored access policies of a table (`Some(None)` when the service refuses to show them:
    /// Shared Key only); `None` when the table does not exist.
    #[allow(clippy::option_option)]
    pub async fn table_access_policies(
        &self,
        table: &str,
    ) -> Result<Option<Option<Vec<SignedIdentifier>>>, AzureError> {
        // Query Tables for this one name (not a query of its entities: that would read data,
        // and take entities/read, in template mode too).
        let exists = self
            .send(
                Method::Get,
                self.url(&[&format!("Tables('{}')", key_literal(table))], &[]),
                &[("accept", NO_METADATA.to_owned())],
                None,
            )
            .await?;
        if exists.status == 404 {
            return Ok(None);
        }
        exists.success()?;
        self.table_acl(table).await.map(Some)
    }

    /// The table's stored access policies; `None` when the service refuses to show them
    /// (Get Table ACL takes Shared Key).
    pub async fn table_acl(
        &self,
        table: &str,
    ) -> Result<Option<Vec<SignedIdentifier>>, AzureError> {
        let response = self
            .send(
                Method::Get,
                self.url(&[table], &[("comp", "acl")]),
                &[],
                None,
            )
            .await?;
        if matches!(response.status, 401 | 403) {
            return Ok(None);
        }
        let response = response.success()?;
        xml::signed_identifiers(&response.body)
            .map(Some)
            .map_err(|e| {
                AzureError::new(
                    AzureErrorKind::Other,
                    format!("could not read the table access policies: {e}"),
                )
            })
    }

    pub async fn set_table_access_policies(
        &self,
        table: &str,
        policies: &[SignedIdentifier],
    ) -> Result<(), AzureError> {
        self.send(
            Method::Put,
            self.url(&[table], &[("comp", "acl")]),
            &[("content-type", "application/xml".to_owned())],
            Some(xml::signed_identifiers_body(policies)),
        )
        .await?
        .success()
        .map(|_| ())
    }

    /// One page (≤ 1000) of a table's entities in key order; `Ok(None)` when the table is absent.
    pub async fn query_entities(
        &self,
        table: &str,
        next: Option<&(String, String)>,
    ) -> Result<Option<EntityPage>, AzureError> {
        let mut query = vec![("$top", "1000")];
        if let Some((partition, row)) = next {
            query.push(("NextPartitionKey", partition.as_str()));
            if !row.is_empty() {
                query.push(("NextRowKey", row.as_str()));
            }
        }
        let Some((response, body)) = self
            .get_full_metadata::<Value>(&format!("{table}()"), &query, "entities")
            .await?
        else {
            return Ok(None);
        };
        let entities = match body.get("value") {
            Some(Value::Array(values)) => values
                .iter()
                .filter_map(|v| v.as_object().cloned())
                .filter_map(Entity::from_json)
                .collect(),
            _ => Vec::new(),
        };
        let partition = response
            .header("x-ms-continuation-nextpartitionkey")
            .map(str::to_owned);
        let row = response
            .header("x-ms-continuation-nextrowkey")
            .map(str::to_owned);
        Ok(Some(EntityPage {
            entities,
            next: partition.map(|p| (p, row.unwrap_or_default())),
        }))
    }

    /// One entity, as [`Self::query_entities`] reads it; `Ok(None)` when it is absent.
    pub async fn get_entity(
        &self,
        table: &str,
        (partition_key, row_key): (&str, &str),
    ) -> Result<Option<Entity>, AzureError> {
        let segment = entity_segment(table, partition_key, row_key);
        Ok(self
            .get_full_metadata::<Map<String, Value>>(&segment, &[], "the entity")
            .await?
            .and_then(|(_, value)| Entity::from_json(value)))
    }

    /// A GET of entities with their types (full metadata): `Ok(None)` when absent (404), else
    /// the answer and its JSON body.
    async fn get_full_metadata<T: serde::de::DeserializeOwned>(
        &self,
        segment: &str,
        query: &[(&str, &str)],
        what: &str,
    ) -> Result<Option<(StorageResponse, T)>, AzureError> {
        let response = self
            .send(
                Method::Get,
                self.url(&[segment], query),
                &[("accept", FULL_METADATA.to_owned())],
                None,
            )
            .await?;
        if response.status == 404 {
            return Ok(None);
        }
        let response = response.success()?;
        let body = serde_json::from_slice(&response.body).map_err(|e| {
            AzureError::new(AzureErrorKind::Other, format!("could not read {what}: {e}"))
        })?;
        Ok(Some((response, body)))
    }

    /// One entity group transaction on one partition. `Ok(Err(..))` when the service refused
    /// it (nothing of it was applied).
    pub async fn write_batch(
        &self,
        table: &str,
        writes: &[EntityWrite],
    ) -> Result<Result<(), BatchFailure>, AzureError> {
        let batch = format!("batch_{:032x}", rand::random::<u128>());
        let changeset = format!("changeset_{:032x}", rand::random::<u128>());
        let table_url = self.url(&[table], &[]);
        let mut body =
            format!("--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n");
        for write in writes {
            let entity = write.entity();
            let mut json = entity.properties.clone();
            json.insert(
                "PartitionKey".into(),
                Value::String(entity.partition_key.clone()),
            );
            json.insert("RowKey".into(), Value::String(entity.row_key.clone()));
            let (method, url) = match write {
                EntityWrite::Insert(_) => ("POST", table_url.to_string()),
                EntityWrite::Replace(_) => {
                    let segment = entity_segment(table, &entity.partition_key, &entity.row_key);
                    ("PUT", self.url(&[&segment], &[]).to_string())
                }
            };
            let payload = Value::Object(json).to_string();
            let _ = write!(
            body,
                "--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n{method} {url} HTTP/1.1\r\nContent-Type: application/json\r\nAccept: {NO_METADATA}\r\nPrefer: return-no-content\r\nDataServiceVersion: 3.0\r\nContent-Length: {}\r\n\r\n{payload}\r\n",
                payload.len()
            );
        }
        let _ = write!(body, "--{changeset}--\r\n--{batch}--\r\n");
        let response = self
            .send(
                Method::Post,
                self.url(&["$batch"], &[]),
                &[
                    ("content-type", format!("multipart/mixed; boundary={batch}")),
                    ("accept", NO_METADATA.to_owned()),
                    ("dataserviceversion", "3.0".to_owned()),
                    ("maxdataserviceversion", "3.0;NetFx".to_owned()),
                ],
                Some(body.into_bytes()),
            )
            .await?;
        if !response.is_success() {
            return Ok(Err(BatchFailure {
                index: None,
                error: response.error(),
            }));
        }
        Ok(batch_outcome(
            &response.body,
            response.header("x-ms-request-id"),
        ))
    }
}

/// Reads the sub-responses of a transaction: success when every one is 2xx; otherwise the
/// first failure with its operation index (the service prefixes its message with `index:`).
fn batch_outcome(body: &[u8], request_id: Option<&str>) -> Result<(), BatchFailure> {
    let text = String::from_utf8_lossy(body);
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("HTTP/1.1 ") else {
            continue;
        };
        let status: u16 = rest
            .split_whitespace()
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if (200..300).contains(&status) {
            continue;
        }
        // The JSON error follows the part's headers.
        let json_line = lines.by_ref().find(|l| l.trim_start().starts_with('{'));
        let (code, message) = json_line
            .and_then(|l| json_error(l.trim().as_bytes()))
            .unwrap_or((None, None));
        let index = message
            .as_deref()
            .and_then(|m| m.split(':').next())
            .and_then(|i| i.trim().parse().ok());
        let error = AzureError::from_response(status, request_id.map(str::to_owned), b"")
            .with_service_text(code, message.as_deref());
        return Err(BatchFailure { index, error });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_keep_types_and_lose_service_fields() {
        let json = serde_json::json!({
            "odata.etag": "W/\"x\"", "odata.type": "acct.t", "PartitionKey": "p", "RowKey": "r",
            "Timestamp": "2024-01-01T00:00:00Z", "Timestamp@odata.type": "Edm.DateTime",
            "Count@odata.type": "Edm.Int64", "Count": "5", "Name": "n", "Name@odata.type": "Edm.String",
        });
        let entity = Entity::from_json(json.as_object().unwrap().clone()).unwrap();
        assert_eq!(entity.key(), ("p", "r"));
        assert_eq!(entity.properties["Count@odata.type"], "Edm.Int64");
        assert!(!entity.properties.contains_key("odata.etag"));
        assert!(!entity.properties.contains_key("Timestamp"));
        assert!(!entity.properties.contains_key("Name@odata.type"));
        assert_eq!(entity.timestamp.as_deref(), Some("2024-01-01T00:00:00Z"));
    }

    fn entity(json: &str) -> Entity {
        Entity::from_json(serde_json::from_str(json).unwrap()).unwrap()
    }

    #[test]
    fn whole_number_doubles_are_written_as_doubles_and_integers_as_int32() {
        // Full metadata leaves Double unannotated: only the text form tells 2500.0 from 2500.
        let read = entity(
            r#"{"PartitionKey":"p","RowKey":"r","Price":2500.0,"Count":2500,"Flag":true,
                "Annotated@odata.type":"Edm.Double","Annotated":42,
                "Inf@odata.type":"Edm.Double","Inf":"Infinity"}"#,
        );
        let p = &read.properties;
        assert_eq!(p["Price@odata.type"], EDM_DOUBLE);
        assert!(!p.contains_key("Count@odata.type"));
        assert!(!p.contains_key("Flag@odata.type"));
        assert_eq!(p["Inf"], "Infinity");
        let written = Value::Object(read.properties.clone()).to_string();
        assert!(written.contains(r#""Price":2500.0"#), "{written}");
        assert!(written.contains(r#""Annotated":42.0"#), "{written}");
        assert!(written.contains(r#""Count":2500"#), "{written}");
    }

    #[test]
    fn doubles_read_and_write_back_to_the_same_bits() {
        for text in [
            "95.34441969555881",
            "0.1",
            "1.7976931348623157e308",
            "-1.7976931348623157e308",
            "2.2250738585072014e-308",
            "5e-324",
            "1e21",
            "0.30000000000000004",
        ] {
            let read = entity(&format!(
                r#"{{"PartitionKey":"p","RowKey":"r","D":{text}}}"#
            ));
            let expected: f64 = text.parse().unwrap();
            let got = read.properties["D"].as_f64().unwrap();
            assert_eq!(got.to_bits(), expected.to_bits(), "{text} read as {got:e}");
            let written = Value::Object(read.properties.clone()).to_string();
            let again = entity(&format!(
                r#"{{"PartitionKey":"p","RowKey":"r",{}"#,
                &written[1..]
            ));
            assert!(again.same_properties(&read), "{text} written as {written}");
        }
    }

    #[test]
    fn properties_compare_by_type_and_bits() {
        let a = entity(r#"{"PartitionKey":"p","RowKey":"r","D":0.0}"#);
        let b = entity(r#"{"PartitionKey":"p","RowKey":"r","D":-0.0}"#);
        let c = entity(r#"{"PartitionKey":"p","RowKey":"r","D":0}"#);
        assert!(a.same_properties(&a.clone()));
        assert!(!a.same_properties(&b));
        assert!(!a.same_properties(&c), "a double is not an Int32");
    }

    #[test]
    fn batch_failures_name_the_operation() {
        let body = b"--batchresponse_1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n--changesetresponse_2\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\n\r\n{\"odata.error\":{\"code\":\"EntityAlreadyExists\",\"message\":{\"lang\":\"en-US\",\"value\":\"3:The specified entity already exists.\"}}}\r\n--changesetresponse_2--\r\n--batchresponse_1--\r\n";
        let failure = batch_outcome(body, Some("rid")).unwrap_err();
        assert_eq!(failure.index, Some(3));
        assert!(failure.error.has_code("EntityAlreadyExists"));
        let ok = b"--b\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 204 No Content\r\n--b--";
        assert!(batch_outcome(ok, None).is_ok());
    }
}
