//! All HTTP to Azure: clouds, the shared transport and its policies, the credential chain,
//! the ARM client and the error type every caller classifies. Raw HTTP lives only here.

pub mod arm;
pub mod cloud;
pub mod credential;
pub mod device_code;
pub mod error;
pub mod policies;
pub mod sensitive;
pub mod storage;
pub mod transport;

pub use cloud::Cloud;
pub use error::{AzureError, AzureErrorKind};
pub use policies::WriteAccess;
pub use sensitive::Sensitive;
pub use transport::{AzureHttp, ConnectTo, HttpSettings};
