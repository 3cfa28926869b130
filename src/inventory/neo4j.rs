//! Reads ATG's graph over Bolt (neo4rs): the `:Resource:Original` nodes (real ARM ids) of the
//! requested types, each with its abstracted `:Resource` twin (linked twin → original by
//! `SCAN_SOURCE_NODE`), in pages keyed on the id. Twins are never counted as resources.
//!
//! ATG stores `properties` and `tags` as JSON strings, `properties` cut at 5,000 characters;
//! they are parsed with [`Properties::from_value`], so a truncated text still yields what
//! survived the cut. A resource whose fields cannot be used is listed as unmatched with the
//! reason and the rest go on; a graph that cannot be read at all is an [`InventoryError`].
//!
//! The password lives in [`Sensitive`] and reaches neo4rs only; it is never logged or shown.

use std::time::Duration;

use neo4rs::{BoltType, ConfigBuilder, Graph, Row};

use super::matching::{SourceResource, Twin};
use super::{InventoryError, Properties, Resource, Unmatched, SOURCE};
use crate::azure::Sensitive;

/// Where the graph is and how to sign in.
#[derive(Clone)]
pub struct GraphSettings {
    pub uri: String,
    pub user: String,
    pub password: Sensitive,
    /// The database to read; `None` for the server's default.
    pub database: Option<String>,
    /// Resources per query.
    pub page_size: usize,
    /// For the TCP connection, the handshake and the first answer.
    pub connect_timeout: Duration,
    /// For each page.
    pub query_timeout: Duration,
}

impl std::fmt::Debug for GraphSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphSettings")
            .field("uri", &shown_uri(&self.uri))
            .field("user", &self.user)
            .field("database", &self.database)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl GraphSettings {
    pub fn new(uri: impl Into<String>, user: impl Into<String>, password: Sensitive) -> Self {
        GraphSettings {
            uri: uri.into(),
            user: user.into(),
            password,
            database: None,
            page_size: 1000,
            connect_timeout: Duration::from_secs(5),
            query_timeout: Duration::from_secs(60),
        }
    }
}

/// What one read gave.
#[derive(Debug, Default)]
pub struct GraphRead {
    pub resources: Vec<SourceResource>,
    /// Resources the graph holds but that cannot be used, with why.
    pub unusable: Vec<Unmatched>,
}

/// A connection to ATG's graph.
pub struct GraphReader {
    graph: Graph,
    settings: GraphSettings,
}

const UNREACHABLE_HINT: &str = "is a Neo4j (Bolt 4.4) server listening at --neo4j-uri?";

/// A server that closes the connection at the handshake ("early eof") most likely refused
/// every version atg offered.
const BOLT5_HINT: &str = "the server closed the connection during the Bolt handshake: atg speaks \
     Bolt 4.4, which Neo4j 4.4 and 5 servers accept; a server that speaks only Bolt 5 is not supported";

/// Why a query got no answer.
enum Failure {
    Neo4j(neo4rs::Error),
    TimedOut,
}

impl Failure {
    /// Whether the connection itself failed (worth one more try on a fresh one).
    fn is_connection(&self) -> bool {
        matches!(
            self,
            Failure::TimedOut
                | Failure::Neo4j(neo4rs::Error::IOError { .. } | neo4rs::Error::ConnectionError)
        )
    }

    fn describe(&self) -> String {
        match self {
            Failure::Neo4j(error) => describe(error),
            Failure::TimedOut => "no answer".into(),
        }
    }
}

const PAGE_QUERY: &str = "MATCH (r:Resource:Original) \
     WHERE r.id > $after AND toLower(r.type) IN $types \
     AND ($subscription = '' OR toLower(r.subscription_id) = $subscription) \
     WITH r ORDER BY r.id LIMIT $limit \
     OPTIONAL MATCH (t:Resource)-[:SCAN_SOURCE_NODE]->(r) \
     WITH r, collect(t) AS twins \
     RETURN r.id AS id, r.name AS name, r.type AS type, \
     r.subscription_id AS subscription_id, r.resource_group AS resource_group, \
     r.properties AS properties, \
     [t IN twins WHERE NOT t:Original | t.id] AS twin_ids, \
     [t IN twins WHERE NOT t:Original | t.name] AS twin_names \
     ORDER BY id";

const COUNT_QUERY: &str = "MATCH (r:Resource:Original) \
     WHERE toLower(r.type) IN $types \
     AND ($subscription = '' OR toLower(r.subscription_id) = $subscription) \
     RETURN count(r) AS n";

impl GraphReader {
    fn error(&self, message: impl Into<String>, hint: Option<&str>) -> InventoryError {
        InventoryError::Graph {
            uri: shown_uri(&self.settings.uri),
            message: message.into(),
            hint: hint.map(str::to_owned),
        }
    }

    /// Connects and checks that the graph is ATG's (it has `:Original` resources). Fails within
    /// twice `connect_timeout` when the server is unreachable or silent: a failed handshake is
    /// retried once on a fresh connection, as some servers fail the first connection after
    /// another client disconnects.
    pub async fn connect(settings: GraphSettings) -> Result<GraphReader, InventoryError> {
        let mut attempt = 0;
        let reader = loop {
            attempt += 1;
            let reader = GraphReader::open(settings.clone()).await?;
            let probe = reader.run_count(
                neo4rs::query("MATCH (r:Original) RETURN count(r) AS n"),
                settings.connect_timeout,
            );
            match probe.await {
                Ok(row) => break (reader, row),
                Err(failure) if attempt == 1 && failure.is_connection() => {
                    tracing::debug!(
                        error = %failure.describe(),
                        "the first connection to the graph failed; retrying once on a fresh connection"
                    );
                }
                Err(Failure::TimedOut) => {
                    return Err(reader.error(
                        format!(
                            "no answer within {} s, twice",
                            settings.connect_timeout.as_secs()
                        ),
                        Some(UNREACHABLE_HINT),
                    ))
                }
                Err(Failure::Neo4j(error)) => return Err(reader.classify(&error)),
            }
        };
        let (reader, row) = reader;
        let count = reader.number(row)?;
        if count == 0 {
            return Err(reader.error(
                "the graph has no `:Original` resource nodes",
                Some(
                    "atg reads the dual graph ATG's scanner writes (`:Resource:Original` nodes \
                     with the real ids, abstracted `:Resource` twins linked by SCAN_SOURCE_NODE); \
                     scan the source tenant with ATG first, or check --neo4j-uri",
                ),
            ));
        }
        Ok(reader)
    }

    /// A reader on a fresh connection pool (neo4rs connects on the first query).
    async fn open(settings: GraphSettings) -> Result<GraphReader, InventoryError> {
        let error = |message: String| InventoryError::Graph {
            uri: shown_uri(&settings.uri),
            message,
            hint: Some("--neo4j-uri takes bolt://HOST:PORT or neo4j://HOST:PORT".into()),
        };
        // An empty name makes a Neo4j server use its default database (neo4rs would send
        // "neo4j" otherwise).
        let config = ConfigBuilder::default()
            .uri(settings.uri.as_str())
            .user(settings.user.as_str())
            .password(settings.password.expose())
            .db(settings.database.as_deref().unwrap_or_default())
            .fetch_size(settings.page_size)
            .max_connections(2)
            .build()
            .map_err(|e| error(format!("invalid connection settings: {}", describe(&e))))?;
        let graph = Graph::connect(config)
            .await
            .map_err(|e| error(describe(&e)))?;
        Ok(GraphReader { graph, settings })
    }

    async fn scalar_with(&self, query: neo4rs::Query) -> Result<i64, InventoryError> {
        let timeout = self.settings.query_timeout;
        match self.run_count(query, timeout).await {
            Ok(row) => self.number(row),
            Err(Failure::Neo4j(e)) => Err(self.classify(&e)),
            Err(Failure::TimedOut) => Err(self.error(
                format!("a page of resources took over {} s", timeout.as_secs()),
                None,
            )),
        }
    }

    /// Runs a query answering one row with an integer `n`.
    async fn run_count(
        &self,
        query: neo4rs::Query,
        timeout: Duration,
    ) -> Result<Option<Row>, Failure> {
        let work = async {
            let mut txn = self.graph.start_txn().await?;
            let mut stream = txn.execute(query).await?;
            let row = stream.next(txn.handle()).await?;
            let _ = txn.commit().await;
            Ok::<_, neo4rs::Error>(row)
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(Ok(row)) => Ok(row),
            Ok(Err(e)) => Err(Failure::Neo4j(e)),
            Err(_) => Err(Failure::TimedOut),
        }
    }

    fn number(&self, row: Option<Row>) -> Result<i64, InventoryError> {
        row.and_then(|row| row.get::<i64>("n").ok())
            .ok_or_else(|| self.error("the server answered a count with no number", None))
    }

    fn timed_out(&self, timeout: Duration) -> InventoryError {
        self.error(
            format!("a page of resources took over {} s", timeout.as_secs()),
            None,
        )
    }

    fn classify(&self, error: &neo4rs::Error) -> InventoryError {
        match error {
            neo4rs::Error::AuthenticationError(_) => self.error(
                "authentication failed",
                Some("check --neo4j-user and --neo4j-password (or NEO4J_USER/NEO4J_PASSWORD)"),
            ),
            neo4rs::Error::Neo4j(inner) if inner.code().contains("Security") => self.error(
                format!("the server refused: {}", inner.code()),
                Some("check --neo4j-user and --neo4j-password (or NEO4J_USER/NEO4J_PASSWORD)"),
            ),
            neo4rs::Error::IOError { detail }
                if detail.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                self.error(
                    format!("cannot connect: {}", describe(error)),
                    Some(BOLT5_HINT),
                )
            }
            neo4rs::Error::IOError { .. } | neo4rs::Error::ConnectionError => self.error(
                format!("cannot connect: {}", describe(error)),
                Some(UNREACHABLE_HINT),
            ),
            neo4rs::Error::UnsupportedVersion(_) => self.error(
                describe(error),
                Some("atg speaks Bolt 4.x; Neo4j 4.x and 5.x servers accept it"),
            ),
            _ => self.error(describe(error), None),
        }
    }

    /// Reads every original of `types` (lowercase ARM types), optionally in one subscription.
    pub async fn read_originals(
        &self,
        types: &[String],
        subscription: Option<&str>,
    ) -> Result<GraphRead, InventoryError> {
        let types: Vec<String> = types.iter().map(|t| t.to_ascii_lowercase()).collect();
        let subscription = subscription.unwrap_or_default().to_ascii_lowercase();
        let limit = i64::try_from(self.settings.page_size.max(1)).unwrap_or(1000);
        let mut read = GraphRead::default();
        let mut after = String::new();
        loop {
            let query = neo4rs::query(PAGE_QUERY)
                .param("after", after.as_str())
                .param("types", types.clone())
                .param("subscription", subscription.as_str())
                .param("limit", limit);
            let work = async {
                let mut txn = self.graph.start_txn().await?;
                let mut stream = txn.execute(query).await?;
                let mut rows = Vec::new();
                while let Some(row) = stream.next(txn.handle()).await? {
                    rows.push(row);
                }
                let _ = txn.commit().await;
                Ok::<_, neo4rs::Error>(rows)
            };
            let rows = match tokio::time::timeout(self.settings.query_timeout, work).await {
                Ok(Ok(rows)) => rows,
                Ok(Err(e)) => return Err(self.classify(&e)),
                Err(_) => return Err(self.timed_out(self.settings.query_timeout)),
            };
            let count = rows.len();
            for row in rows {
                let id = text(&row, "id").ok().flatten().ok_or_else(|| {
                    self.error("an `:Original` resource has no string `id`", None)
                })?;
                if id <= after {
                    return Err(self.error("the server did not return the page in id order", None));
                }
                after.clone_from(&id);
                match resource_of(&row, &id) {
                    Ok(resource) => read.resources.push(resource),
                    Err(unusable) => {
                        let (resource, reason) = *unusable;
                        read.unusable
                            .push(Unmatched::new(SOURCE, &resource, reason));
                    }
                }
            }
            tracing::debug!(resources = read.resources.len(), "read a page of the graph");
            if count < self.settings.page_size.max(1) {
                break;
            }
        }
        // Originals whose id is not a string never match `r.id > $after`: count them in
        // rather than skip them silently.
        let total = self
            .scalar_with(
                neo4rs::query(COUNT_QUERY)
                    .param("types", types.clone())
                    .param("subscription", subscription.as_str()),
            )
            .await?;
        let seen = read.resources.len() + read.unusable.len();
        if usize::try_from(total).unwrap_or(usize::MAX) != seen {
            return Err(self.error(
                format!(
                    "{total} original resources of the supported types, but only {seen} with a string `id`"
                ),
                Some("ATG writes every `:Original` with its ARM id as a string `id`; is this ATG's graph?"),
            ));
        }
        Ok(read)
    }
}

/// The URI for messages and reports: without user information (a password may be in it).
pub fn shown_uri(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string().trim_end_matches('/').to_owned()
        }
        Err(_) => match uri.rsplit_once('@') {
            Some((_, host)) => format!("<redacted>@{host}"),
            None => uri.to_owned(),
        },
    }
}

/// The neo4rs error without anything that could hold a secret (neo4rs errors carry server
/// messages and I/O errors, never the credentials, but be explicit about what is shown).
fn describe(error: &neo4rs::Error) -> String {
    let text = error.to_string();
    let text = text.trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "unknown error".into(),
    }
}

/// A string column: `Ok(None)` for null or missing, `Err` for another type.
fn text(row: &Row, key: &str) -> Result<Option<String>, String> {
    match row.get::<BoltType>(key) {
        Ok(BoltType::String(value)) => Ok(Some(value.value)),
        Ok(BoltType::Null(_)) | Err(_) => Ok(None),
        Ok(other) => Err(format!("`{key}` is not a string ({})", bolt_kind(&other))),
    }
}

fn texts(row: &Row, key: &str) -> Vec<Option<String>> {
    match row.get::<BoltType>(key) {
        Ok(BoltType::List(list)) => list
            .value
            .into_iter()
            .map(|item| match item {
                BoltType::String(s) => Some(s.value),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn bolt_kind(value: &BoltType) -> &'static str {
    match value {
        BoltType::Integer(_) => "an integer",
        BoltType::Float(_) => "a float",
        BoltType::Boolean(_) => "a boolean",
        BoltType::List(_) => "a list",
        BoltType::Map(_) => "a map",
        _ => "another type",
    }
}

/// One row → a source resource, or the reason it cannot be used (with what is known of it).
fn resource_of(row: &Row, id: &str) -> Result<SourceResource, Box<(Resource, String)>> {
    let mut resource = Resource {
        id: id.to_owned(),
        resource_type: String::new(),
        name: id.rsplit('/').next().unwrap_or_default().to_owned(),
        subscription_id: None,
        resource_group: None,
        properties: Properties::Missing,
        options: serde_json::Map::new(),
    };
    let field = |key: &str| text(row, key);
    let fail = |resource: &Resource, reason: String| Err(Box::new((resource.clone(), reason)));
    match field("type") {
        Ok(Some(t)) => resource.resource_type = t,
        Ok(None) => return fail(&resource, "the graph gives no `type`".into()),
        Err(e) => return fail(&resource, e),
    }
    match field("name") {
        Ok(Some(name)) if !name.is_empty() => resource.name = name,
        Ok(_) => return fail(&resource, "the graph gives no `name`".into()),
        Err(e) => return fail(&resource, e),
    }
    let parsed = Resource::parse_id(id);
    resource.subscription_id = match field("subscription_id") {
        Ok(Some(s)) => Some(s),
        Ok(None) => parsed.as_ref().ok().map(|(s, _)| s.clone()),
        Err(e) => return fail(&resource, e),
    };
    resource.resource_group = match field("resource_group") {
        Ok(Some(g)) => Some(g),
        Ok(None) => parsed.as_ref().ok().and_then(|(_, g)| g.clone()),
        Err(e) => return fail(&resource, e),
    };
    if let Err(e) = &parsed {
        return fail(&resource, e.clone());
    }
    let properties = match row.get::<BoltType>("properties") {
        Ok(BoltType::String(s)) => Some(serde_json::Value::String(s.value)),
        Ok(BoltType::Null(_)) | Err(_) => None,
        Ok(other) => {
            return fail(
                &resource,
                format!(
                    "unreadable `properties`: {} where ATG writes a JSON string",
                    bolt_kind(&other)
                ),
            )
        }
    };
    resource.properties = match Properties::from_value(properties.as_ref()) {
        Ok(p) => p,
        Err(e) => return fail(&resource, format!("unreadable {e}")),
    };
    let ids = texts(row, "twin_ids");
    let names = texts(row, "twin_names");
    let twins: Vec<Twin> = ids
        .into_iter()
        .zip(names)
        .filter_map(|(id, name)| match (id, name) {
            (Some(id), Some(name)) => Some(Twin { id, name }),
            (Some(id), None) => Some(Twin {
                name: id.clone(),
                id,
            }),
            _ => None,
        })
        .collect();
    let twin = match twins.len() {
        0 => None,
        1 => twins.into_iter().next(),
        n => {
            return fail(
                &resource,
                format!("{n} abstracted twins point to it (SCAN_SOURCE_NODE); ATG writes one"),
            )
        }
    };
    Ok(SourceResource { resource, twin })
}
