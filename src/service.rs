//! What a service is on the wire: its name and method table.

/// The static description of a service that client and server compare when they connect.
///
/// `#[localrpc::service]` generates one per trait; the method table hash covers each method's
/// name, argument types and return type, so a client built from a different version of the
/// trait is refused at connect time instead of failing later with a decode error.
///
/// ```
/// use localrpc::ServiceInfo;
///
/// static INFO: ServiceInfo = ServiceInfo::new("Calculator", &["add", "div"], 0x1234);
/// assert_eq!(INFO.method_name(1), Some("div"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceInfo {
    name: &'static str,
    methods: &'static [&'static str],
    hash: u64,
}

impl ServiceInfo {
    /// Describes a service. `hash` identifies the method table (names and signatures).
    ///
    /// See the [type docs](ServiceInfo) for an example.
    pub const fn new(name: &'static str, methods: &'static [&'static str], hash: u64) -> Self {
        ServiceInfo {
            name,
            methods,
            hash,
        }
    }

    /// The service name sent in the handshake.
    ///
    /// See the [type docs](ServiceInfo) for an example.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The method names, in wire order (a request names its method by index).
    ///
    /// See the [type docs](ServiceInfo) for an example.
    pub const fn methods(&self) -> &'static [&'static str] {
        self.methods
    }

    /// The method table hash.
    ///
    /// See the [type docs](ServiceInfo) for an example.
    pub const fn hash(&self) -> u64 {
        self.hash
    }

    /// The name of method `index`, if there is one.
    ///
    /// See the [type docs](ServiceInfo) for an example.
    pub fn method_name(&self, index: u32) -> Option<&'static str> {
        self.methods.get(index as usize).copied()
    }
}

/// A type that serves or calls one service: the generated `XServer` and `XClient`.
///
/// ```
/// use localrpc::{NamedService, ServiceInfo};
///
/// struct Raw;
/// impl NamedService for Raw {
///     const INFO: &'static ServiceInfo = &ServiceInfo::new("Raw", &["ping"], 1);
/// }
/// assert_eq!(Raw::INFO.name(), "Raw");
/// ```
pub trait NamedService {
    /// The service's description.
    const INFO: &'static ServiceInfo;
}

/// FNV-1a, the method table hash the macro computes at expansion time (kept here so that
/// other implementations can reproduce it: see `proto/localrpc.proto`).
///
/// ```
/// assert_eq!(localrpc::method_table_hash(""), 0xcbf29ce484222325);
/// ```
pub const fn method_table_hash(canonical: &str) -> u64 {
    let bytes = canonical.as_bytes();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}
