//! Linux and Android only: abstract socket names.
use crate::name::Repr;
use crate::{Name, NameError};

impl Name {
    /// A Linux abstract socket name (Linux and Android only).
    ///
    /// Abstract sockets vanish when their last listener closes, so they never go stale, but
    /// they ignore file permissions: any process in the same network namespace can connect.
    /// Check [`PeerCredentials`](crate::ipc::PeerCredentials) on the server when that matters.
    ///
    /// ```
    /// let name = localrpc::Name::abstract_name("myapp.calc")?;
    /// assert_eq!(name.to_string(), "abstract:myapp.calc");
    /// assert_eq!(name.endpoint()?.to_string(), "@myapp.calc");
    /// # Ok::<(), localrpc::NameError>(())
    /// ```
    pub fn abstract_name(name: impl AsRef<[u8]>) -> Result<Name, NameError> {
        let bytes = name.as_ref();
        crate::name::check_no_nul(bytes)?;
        super::check_socket_path_len(bytes.len())?;
        Ok(Name::from_repr(Repr::Abstract(bytes.to_vec())))
    }
}
