//! The versioned, soft-deletable collection secrets, keys and certificates share, and the
//! handlers that behave alike for the three: get, update, list, versions, delete, deleted
//! listing, recover, purge, backup and restore, with their not-found and conflict answers.
//! Each kind implements [`Kind`] (its names, how it renders, what it cascades) and routes what
//! only it has (set, create, import, ...) before falling back to [`route`].

use hyper::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{
    backup_blob, deleted_conflict, method_not_allowed, not_found, not_found_path, ok, ordinal_key,
    page, restore_blob, Attributes, Context, Vault, RECOVERABLE_DAYS,
};
use crate::http::{now_unix, ApiResponse};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Version<T> {
    pub id: String,
    pub attributes: Attributes,
    pub tags: Option<Value>,
    pub data: T,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Object<T> {
    pub name: String,
    /// Oldest first; the last one is "latest".
    pub versions: Vec<Version<T>>,
}

impl<T> Object<T> {
    pub fn latest(&self) -> Option<&Version<T>> {
        self.versions.last()
    }

    pub fn version(&self, version: Option<&str>) -> Option<&Version<T>> {
        match version {
            None => self.latest(),
            Some(id) => self.versions.iter().find(|v| v.id.eq_ignore_ascii_case(id)),
        }
    }

    pub fn version_mut(&mut self, version: Option<&str>) -> Option<&mut Version<T>> {
        match version {
            None => self.versions.last_mut(),
            Some(id) => self
                .versions
                .iter_mut()
                .find(|v| v.id.eq_ignore_ascii_case(id)),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Deleted<T> {
    pub object: Object<T>,
    pub deleted_date: i64,
}

impl<T> Deleted<T> {
    /// `recoveryId`, `deletedDate` and `scheduledPurgeDate` of a deleted bundle.
    pub fn decorate(&self, base: &str, collection: &str, bundle: &mut Value) {
        bundle["recoveryId"] = json!(format!("{base}/{collection}/{}", self.object.name));
        bundle["deletedDate"] = json!(self.deleted_date);
        bundle["scheduledPurgeDate"] = json!(self.deleted_date + RECOVERABLE_DAYS * 86_400);
    }
}

/// Active and soft-deleted objects of one kind; names are case-insensitive as in Key Vault.
#[derive(Debug)]
pub(crate) struct Collection<T> {
    pub active: std::collections::BTreeMap<String, Object<T>>,
    pub deleted: std::collections::BTreeMap<String, Deleted<T>>,
}

impl<T> Default for Collection<T> {
    fn default() -> Self {
        Self {
            active: std::collections::BTreeMap::new(),
            deleted: std::collections::BTreeMap::new(),
        }
    }
}

impl<T: Clone> Collection<T> {
    pub fn get(&self, name: &str) -> Option<&Object<T>> {
        self.active.get(&name.to_ascii_lowercase())
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Object<T>> {
        self.active.get_mut(&name.to_ascii_lowercase())
    }

    pub fn is_deleted(&self, name: &str) -> bool {
        self.deleted.contains_key(&name.to_ascii_lowercase())
    }

    /// Adds a new latest version; the caller has checked the name is not soft-deleted.
    pub fn push(&mut self, name: &str, version: Version<T>) -> &Version<T> {
        let object = self
            .active
            .entry(name.to_ascii_lowercase())
            .or_insert_with(|| Object {
                name: name.to_owned(),
                versions: Vec::new(),
            });
        object.versions.push(version);
        let last = object.versions.len() - 1;
        &object.versions[last]
    }

    pub fn delete(&mut self, name: &str) -> Option<&Deleted<T>> {
        let key = name.to_ascii_lowercase();
        let object = self.active.remove(&key)?;
        self.deleted.insert(
            key.clone(),
            Deleted {
                object,
                deleted_date: now_unix(),
            },
        );
        self.deleted.get(&key)
    }

    pub fn recover(&mut self, name: &str) -> Option<&Object<T>> {
        let key = name.to_ascii_lowercase();
        let deleted = self.deleted.remove(&key)?;
        self.active.insert(key.clone(), deleted.object);
        self.active.get(&key)
    }

    pub fn purge(&mut self, name: &str) -> bool {
        self.deleted.remove(&name.to_ascii_lowercase()).is_some()
    }
}

/// What one kind of object (secret, key, certificate) brings to the shared handlers.
pub(crate) trait Kind: Clone + Serialize + DeserializeOwned + Sized {
    /// `secret`, as in messages and backups.
    const KIND: &'static str;
    /// `Secret`, as in messages that start with it.
    const TITLE: &'static str;
    /// `deletedsecrets`: the path of the deleted objects, and of their recovery ids.
    const DELETED_PATH: &'static str;

    fn collection(vault: &Vault) -> &Collection<Self>;
    fn collection_mut(vault: &mut Vault) -> &mut Collection<Self>;

    /// The bundle a get, update, delete or recover answers with (a secret's without its value).
    fn bundle(
        vault: &Vault,
        context: &Context<'_>,
        object: &Object<Self>,
        version: &Version<Self>,
    ) -> Value;

    /// A list item; `versioned` decides whether its id carries the version.
    fn item(
        context: &Context<'_>,
        object: &Object<Self>,
        version: &Version<Self>,
        versioned: bool,
    ) -> Value;

    /// Applies the kind's own members of an update's body (content type, operations, ...).
    fn update(_version: &mut Version<Self>, _body: &Value) {}

    /// Left out of the deleted listing (a certificate's backing key and secret are reached
    /// through the certificate).
    fn unlisted_when_deleted(_data: &Self) -> bool {
        false
    }

    /// What goes with the object when it is deleted, recovered or purged (a certificate's
    /// backing key and secret).
    fn cascade(_vault: &mut Vault, _name: &str, _change: Change) {}
}

/// A soft-delete change, for [`Kind::cascade`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    Delete,
    Recover,
    Purge,
}

pub(crate) fn object_not_found<T: Kind>(name: &str) -> ApiResponse {
    not_found(&format!("{}NotFound", T::TITLE), T::KIND, name)
}

fn deleted_not_found<T: Kind>(name: &str) -> ApiResponse {
    ApiResponse::error(
        StatusCode::NOT_FOUND,
        &format!("{}NotFound", T::TITLE),
        &format!("Deleted {} not found: {name}", T::TITLE),
        None,
    )
}

/// The soft-delete conflict for `name` of this kind.
pub(crate) fn conflict_if_deleted<T: Kind>(vault: &Vault, name: &str) -> Option<ApiResponse> {
    T::collection(vault)
        .is_deleted(name)
        .then(|| deleted_conflict(T::TITLE, T::KIND, name))
}

/// The routes every kind has; `deleted` says whether the path starts with the deleted
/// objects' collection. Anything else is refused as Key Vault does.
pub(crate) fn route<T: Kind>(
    vault: &mut Vault,
    context: &Context<'_>,
    deleted: bool,
    rest: &[&str],
) -> ApiResponse {
    match (deleted, rest, context.request.method.as_str()) {
        (false, [], "GET") => list::<T>(vault, context),
        (false, ["restore"], "POST") => restore::<T>(vault, context),
        (false, [name], "GET") => render::<T>(vault, context, name, None),
        (false, [name], "PATCH") => update::<T>(vault, context, name, None),
        (false, [name], "DELETE") => delete::<T>(vault, context, name),
        (false, [name, "versions"], "GET") => versions::<T>(vault, context, name),
        (false, [name, "backup"], "POST") => backup::<T>(vault, name),
        (false, [name, version], "GET") => render::<T>(vault, context, name, Some(version)),
        (false, [name, version], "PATCH") => update::<T>(vault, context, name, Some(version)),
        (true, [], "GET") => list_deleted::<T>(vault, context),
        (true, [name], "GET") => get_deleted::<T>(vault, context, name),
        (true, [name], "DELETE") => purge::<T>(vault, name),
        (true, [name, "recover"], "POST") => recover::<T>(vault, context, name),
        (_, [] | [_] | [_, _], _) => method_not_allowed(),
        _ => not_found_path(),
    }
}

fn version_not_found<T: Kind>(name: &str, version: Option<&str>) -> ApiResponse {
    object_not_found::<T>(&format!("{name}/{}", version.unwrap_or_default()))
}

/// The object's bundle as it is now, or not found.
pub(crate) fn render<T: Kind>(
    vault: &Vault,
    context: &Context<'_>,
    name: &str,
    version: Option<&str>,
) -> ApiResponse {
    let Some(object) = T::collection(vault).get(name) else {
        return object_not_found::<T>(name);
    };
    match object.version(version) {
        Some(found) => ok(&T::bundle(vault, context, object, found)),
        None => version_not_found::<T>(name, version),
    }
}

fn update<T: Kind>(
    vault: &mut Vault,
    context: &Context<'_>,
    name: &str,
    version: Option<&str>,
) -> ApiResponse {
    let body = match context.body() {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(object) = T::collection_mut(vault).get_mut(name) else {
        return object_not_found::<T>(name);
    };
    let Some(found) = object.version_mut(version) else {
        return version_not_found::<T>(name, version);
    };
    found.attributes.apply(&body["attributes"]);
    found.attributes.updated = now_unix();
    T::update(found, &body);
    if let Some(tags) = body.get("tags").filter(|tags| tags.is_object()) {
        found.tags = Some(tags.clone());
    }
    render::<T>(vault, context, name, version)
}

fn list<T: Kind>(vault: &Vault, context: &Context<'_>) -> ApiResponse {
    let items = T::collection(vault)
        .active
        .iter()
        .filter_map(|(key, object)| {
            object
                .latest()
                .map(|latest| (key.clone(), T::item(context, object, latest, false)))
        })
        .collect();
    page(context, items)
}

fn versions<T: Kind>(vault: &Vault, context: &Context<'_>, name: &str) -> ApiResponse {
    let Some(object) = T::collection(vault).get(name) else {
        return object_not_found::<T>(name);
    };
    let items = object
        .versions
        .iter()
        .enumerate()
        .map(|(index, version)| (ordinal_key(index), T::item(context, object, version, true)))
        .collect();
    page(context, items)
}

fn deleted_bundle<T: Kind>(
    vault: &Vault,
    context: &Context<'_>,
    deleted: &Deleted<T>,
) -> Option<Value> {
    let latest = deleted.object.latest()?;
    let mut out = T::bundle(vault, context, &deleted.object, latest);
    deleted.decorate(&context.base, T::DELETED_PATH, &mut out);
    Some(out)
}

fn delete<T: Kind>(vault: &mut Vault, context: &Context<'_>, name: &str) -> ApiResponse {
    if T::collection_mut(vault).delete(name).is_none() {
        return object_not_found::<T>(name);
    }
    T::cascade(vault, name, Change::Delete);
    get_deleted::<T>(vault, context, name)
}

fn list_deleted<T: Kind>(vault: &Vault, context: &Context<'_>) -> ApiResponse {
    let items = T::collection(vault)
        .deleted
        .iter()
        .filter_map(|(key, deleted)| {
            let latest = deleted.object.latest()?;
            if T::unlisted_when_deleted(&latest.data) {
                return None;
            }
            let mut out = T::item(context, &deleted.object, latest, false);
            deleted.decorate(&context.base, T::DELETED_PATH, &mut out);
            Some((key.clone(), out))
        })
        .collect();
    page(context, items)
}

fn get_deleted<T: Kind>(vault: &Vault, context: &Context<'_>, name: &str) -> ApiResponse {
    T::collection(vault)
        .deleted
        .get(&name.to_ascii_lowercase())
        .and_then(|deleted| deleted_bundle(vault, context, deleted))
        .map_or_else(|| deleted_not_found::<T>(name), |out| ok(&out))
}

fn recover<T: Kind>(vault: &mut Vault, context: &Context<'_>, name: &str) -> ApiResponse {
    if T::collection_mut(vault).recover(name).is_none() {
        return deleted_not_found::<T>(name);
    }
    T::cascade(vault, name, Change::Recover);
    render::<T>(vault, context, name, None)
}

fn purge<T: Kind>(vault: &mut Vault, name: &str) -> ApiResponse {
    if T::collection_mut(vault).purge(name) {
        T::cascade(vault, name, Change::Purge);
        ApiResponse::empty(StatusCode::NO_CONTENT)
    } else {
        deleted_not_found::<T>(name)
    }
}

fn backup<T: Kind>(vault: &Vault, name: &str) -> ApiResponse {
    match T::collection(vault).get(name) {
        Some(object) => backup_blob(T::KIND, object),
        None => object_not_found::<T>(name),
    }
}

fn restore<T: Kind>(vault: &mut Vault, context: &Context<'_>) -> ApiResponse {
    let body = match context.body() {
        Ok(body) => body,
        Err(response) => return response,
    };
    let object: Object<T> = match restore_blob(T::KIND, &body) {
        Ok(object) => object,
        Err(response) => return response,
    };
    let name = object.name.clone();
    if let Some(conflict) = restore_conflict::<T>(vault, &name) {
        return conflict;
    }
    T::collection_mut(vault)
        .active
        .insert(name.to_ascii_lowercase(), object);
    render::<T>(vault, context, &name, None)
}

/// Why a backup of `name` cannot be restored: the name is soft-deleted or in use.
pub(crate) fn restore_conflict<T: Kind>(vault: &Vault, name: &str) -> Option<ApiResponse> {
    conflict_if_deleted::<T>(vault, name).or_else(|| {
        T::collection(vault).get(name).map(|_| {
            ApiResponse::error(
                StatusCode::CONFLICT,
                "Conflict",
                &format!("{} {name} already exists in this vault.", T::TITLE),
                None,
            )
        })
    })
}
