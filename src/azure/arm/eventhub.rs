//! Microsoft.EventHub through ARM: the same calls as Service Bus ([`super::servicebus`]), at
//! Event Hubs' api-version.

use super::servicebus::Messaging;

/// Microsoft.EventHub api-version (as Service Bus: the stable 2024-01-01).
pub const API_VERSION: &str = "2024-01-01";

pub static EVENT_HUBS: Messaging = Messaging {
    api_version: API_VERSION,
};
