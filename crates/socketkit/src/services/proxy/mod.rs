//! Proxy servers: clients choose where their bytes go, so who may use them
//! and where they may connect are policy.

pub mod http;

pub use http::HttpProxy;
