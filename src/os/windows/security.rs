//! Security descriptors for pipe instances: the owner-only default and SDDL conversion.
use std::ffi::c_void;
use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::ptr;

use windows_sys::Win32::Foundation::{ERROR_INSUFFICIENT_BUFFER, HANDLE, LocalFree};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{
    GetTokenInformation, SECURITY_ATTRIBUTES, TOKEN_QUERY, TOKEN_USER, TokenUser,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

/// Memory the system allocated with `LocalAlloc` for us, released with `LocalFree` on drop.
struct LocalBox(*mut c_void);

impl Drop for LocalBox {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from a system call documented to allocate it with
            // LocalAlloc and to leave freeing it to the caller; it is freed exactly once.
            unsafe { LocalFree(self.0) };
        }
    }
}

/// A self-relative security descriptor, built once per listener and applied to every
/// pipe instance it creates.
pub(super) struct SecurityDescriptor {
    sd: LocalBox,
    sddl: String,
}

// SAFETY: the descriptor is owned exclusively by this value, never written after
// construction, and only read by CreateNamedPipeW; LocalFree may run on any thread.
unsafe impl Send for SecurityDescriptor {}
// SAFETY: as above, shared references only ever hand the descriptor to the OS for reading.
unsafe impl Sync for SecurityDescriptor {}

impl std::fmt::Debug for SecurityDescriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SecurityDescriptor")
            .field(&self.sddl)
            .finish()
    }
}

impl SecurityDescriptor {
    /// Converts an SDDL string such as `D:P(A;;GA;;;S-1-5-21-...)`.
    pub(super) fn from_sddl(sddl: &str) -> io::Result<SecurityDescriptor> {
        let wide = to_wide(sddl)?;
        let mut sd = ptr::null_mut();
        // SAFETY: `wide` is NUL-terminated UTF-16 that outlives the call, `sd` is valid for
        // writes, and the size output is optional (null).
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                wide.as_ptr(),
                SDDL_REVISION_1,
                &mut sd,
                ptr::null_mut(),
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(SecurityDescriptor {
            sd: LocalBox(sd),
            sddl: sddl.to_owned(),
        })
    }

    /// Attributes pointing at this descriptor, valid while `self` lives; handles are not
    /// inherited by child processes.
    pub(super) fn attributes(&self) -> SECURITY_ATTRIBUTES {
        SECURITY_ATTRIBUTES {
            nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: self.sd.0,
            bInheritHandle: 0,
        }
    }
}

/// A protected DACL that grants full access to the current user's SID and nobody else.
pub(super) fn owner_only_sddl() -> io::Result<String> {
    Ok(format!("D:P(A;;GA;;;{})", current_user_sid()?))
}

/// The string form (`S-1-5-21-...`) of the user this process runs as.
fn current_user_sid() -> io::Result<String> {
    let mut raw: HANDLE = ptr::null_mut();
    // SAFETY: GetCurrentProcess returns a pseudo-handle that needs no closing; `raw` is
    // valid for writes.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut raw) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: OpenProcessToken succeeded, so `raw` is a token handle that we now own.
    let token = unsafe { OwnedHandle::from_raw_handle(raw) };
    let raw = token.as_raw_handle();

    let mut len = 0u32;
    // SAFETY: a null buffer of length 0 asks only for the needed size, written to `len`.
    let ok = unsafe { GetTokenInformation(raw, TokenUser, ptr::null_mut(), 0, &mut len) };
    let err = io::Error::last_os_error();
    if ok != 0 || err.raw_os_error() != Some(ERROR_INSUFFICIENT_BUFFER as i32) {
        return Err(err);
    }
    // u64 elements keep the buffer aligned for TOKEN_USER and the SID behind it.
    let mut buf = vec![0u64; (len as usize).div_ceil(8)];
    // SAFETY: `buf` is writable for at least `len` bytes and `len` is valid for writes.
    let ok = unsafe { GetTokenInformation(raw, TokenUser, buf.as_mut_ptr().cast(), len, &mut len) };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    drop(token);
    // SAFETY: on success the buffer starts with an initialised, suitably aligned TOKEN_USER
    // whose SID pointer points into the same buffer, which stays alive below.
    let sid = unsafe { (*buf.as_ptr().cast::<TOKEN_USER>()).User.Sid };
    let mut text: *mut u16 = ptr::null_mut();
    // SAFETY: `sid` is a valid SID (see above) and `text` is valid for writes.
    if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let text = LocalBox(text.cast());
    // SAFETY: on success `text` is a NUL-terminated UTF-16 string allocated by the system,
    // alive until `text` drops at the end of this function.
    let units = unsafe {
        let start = text.0.cast::<u16>();
        let len = (0..).take_while(|&i| *start.add(i) != 0).count();
        std::slice::from_raw_parts(start, len)
    };
    Ok(String::from_utf16_lossy(units))
}

/// NUL-terminated UTF-16; an interior NUL would silently cut the string short, so refuse it.
fn to_wide(s: &str) -> io::Result<Vec<u16>> {
    if s.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "security descriptor contains a nul character",
        ));
    }
    Ok(s.encode_utf16().chain(Some(0)).collect())
}
