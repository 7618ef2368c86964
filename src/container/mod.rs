//! The domain: container names, `NAME.conf`, addresses, paths and the files a container owns.
//! Nothing here knows about Rhai or about how a container is run.

pub mod address;
pub mod conf;
pub mod config_file;
pub mod declared;
pub mod limits;
pub mod lock;
pub mod name;
pub mod network;
pub mod nspawn_flags;
pub mod options;
pub mod paths;
pub mod store;
pub mod unit;

pub use conf::Conf;
pub use name::ContainerName;
pub use options::{ConfigSource, CreateOptions, NixOptions, UpdateOptions};
pub use paths::Paths;
pub use store::Created;
