//! Microsoft.Web through ARM (App Service and Function Apps): the api-version atg pins.
//!
//! 2024-11-01: a stable version the service has answered since 2024 (the shared recordings use
//! 2022-03-01 and 2023-01-01, the specification's examples 2025-03-01; the routes and shapes atg
//! uses are the same in all of them).

/// Microsoft.Web api-version.
pub const API_VERSION: &str = "2024-11-01";
