//! Thin wrappers over the system calls live capture needs (socket options, bind, mmap, poll,
//! interface lookups), each a small function holding one `unsafe` block with its `// SAFETY:`
//! reasoning. Not policy: the order of calls and what they mean for capture live in `ring`.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

use crate::error::CaptureError;

/// `ETH_P_ALL` in network byte order, the protocol a capture socket binds to.
pub const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();

/// The system page size (the unit of ring blocks).
pub fn page_size() -> u32 {
    // SAFETY: sysconf has no preconditions and only reads a constant of the system.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u32::try_from(n).unwrap_or(4096)
}

/// Opens an `AF_PACKET`/`SOCK_RAW` socket with protocol 0: it receives nothing until it is
/// bound with a protocol, which gives time to attach a filter and set up the ring first.
pub fn packet_socket() -> Result<OwnedFd, CaptureError> {
    // SAFETY: socket takes plain integers and returns a new descriptor or -1.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(CaptureError::last_os("socket(AF_PACKET)"));
    }
    // SAFETY: fd is a descriptor we just opened and own exclusively.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A socket for interface ioctls (any family works for them; `AF_UNIX` needs no privilege).
fn ioctl_socket() -> Result<OwnedFd, CaptureError> {
    // SAFETY: socket takes plain integers and returns a new descriptor or -1.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(CaptureError::last_os("socket(AF_UNIX)"));
    }
    // SAFETY: fd is a descriptor we just opened and own exclusively.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(fd, level, name, value)` for a plain-old-data value.
pub fn setsockopt<T: Copy>(
    fd: &OwnedFd,
    level: i32,
    name: i32,
    value: &T,
    what: &'static str,
) -> Result<(), CaptureError> {
    let len = size_of::<T>() as libc::socklen_t;
    // SAFETY: value points to size_of::<T>() readable bytes for the duration of the call; the
    // kernel copies them and keeps no pointer (SO_ATTACH_FILTER's inner pointer is read
    // during the call too, the caller keeps it alive across it).
    let rc =
        unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, (value as *const T).cast(), len) };
    if rc < 0 {
        return Err(CaptureError::last_os(what));
    }
    Ok(())
}

/// `getsockopt(fd, level, name)` into a plain-old-data value that is valid when zeroed.
pub fn getsockopt<T: Copy + Default>(
    fd: &OwnedFd,
    level: i32,
    name: i32,
    what: &'static str,
) -> Result<T, CaptureError> {
    let mut value = T::default();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: value is a writable T of len bytes, and len is passed by pointer as required;
    // the kernel writes at most len bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut T).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(CaptureError::last_os(what));
    }
    Ok(value)
}

/// Binds a packet socket to `ifindex` (0 = every interface) for protocol `ETH_P_ALL`.
pub fn bind_packet(fd: &OwnedFd, ifindex: i32) -> Result<(), CaptureError> {
    // SAFETY: sockaddr_ll is plain data for which all-zero bytes are a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_ALL_BE;
    sll.sll_ifindex = ifindex;
    // SAFETY: sll is a valid sockaddr_ll and the length passed is its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(CaptureError::last_os("bind"));
    }
    Ok(())
}

/// Index of interface `name` in the caller's network namespace, `None` if there is none.
pub fn if_index(name: &str) -> Option<i32> {
    let c = CString::new(name).ok()?;
    // SAFETY: c is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    i32::try_from(idx).ok().filter(|&i| i > 0)
}

/// Every interface of the caller's network namespace as (index, name).
pub fn if_list() -> Result<Vec<(u32, String)>, CaptureError> {
    // SAFETY: if_nameindex has no preconditions; it returns a heap array or null.
    let head = unsafe { libc::if_nameindex() };
    if head.is_null() {
        return Err(CaptureError::last_os("if_nameindex"));
    }
    let mut out = Vec::new();
    let mut p = head;
    loop {
        // SAFETY: p points into the array returned by if_nameindex, which ends with an
        // entry whose index is 0 and name null; we stop at that entry.
        let entry = unsafe { &*p };
        if entry.if_index == 0 || entry.if_name.is_null() {
            break;
        }
        // SAFETY: if_name of a non-terminal entry is a NUL-terminated string owned by the array.
        let name = unsafe { CStr::from_ptr(entry.if_name) };
        out.push((entry.if_index, name.to_string_lossy().into_owned()));
        // SAFETY: the terminal entry has not been reached, so the next entry exists.
        p = unsafe { p.add(1) };
    }
    // SAFETY: head came from if_nameindex and is freed exactly once, after the last use.
    unsafe { libc::if_freenameindex(head) };
    Ok(out)
}

/// `struct ifreq`: a name and a 24-byte union (aligned like the pointers inside it).
#[repr(C)]
#[derive(Clone, Copy)]
struct IfReq {
    name: [u8; 16],
    data: [u64; 3],
}

/// Runs an interface ioctl and returns the union part of the reply.
fn if_ioctl(fd: &OwnedFd, name: &str, req: libc::c_ulong) -> Option<[u8; 24]> {
    let mut r = IfReq {
        name: [0; 16],
        data: [0; 3],
    };
    let bytes = name.as_bytes();
    if bytes.len() >= r.name.len() {
        return None;
    }
    r.name[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: r is a properly sized and aligned struct ifreq with a NUL-terminated name;
    // these requests write only inside it.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), req as _, &mut r as *mut IfReq) };
    if rc < 0 {
        return None;
    }
    let mut out = [0u8; 24];
    for (chunk, word) in out.chunks_exact_mut(8).zip(r.data) {
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    Some(out)
}

/// Hardware type (`ARPHRD_*`) and whether the interface is up, for each name.
pub fn if_details(names: &[(u32, String)]) -> Result<Vec<(u16, bool)>, CaptureError> {
    let fd = ioctl_socket()?;
    Ok(names
        .iter()
        .map(|(_, name)| {
            let hatype = if_ioctl(&fd, name, libc::SIOCGIFHWADDR)
                .map(|d| u16::from_ne_bytes([d[0], d[1]]))
                .unwrap_or(u16::MAX);
            let up = if_ioctl(&fd, name, libc::SIOCGIFFLAGS)
                .map(|d| i16::from_ne_bytes([d[0], d[1]]) & libc::IFF_UP as i16 != 0)
                .unwrap_or(false);
            (hatype, up)
        })
        .collect())
}

/// What one wait on a socket found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// Readable (or at least woken): look at the ring.
    Readable,
    /// The socket has a pending error (e.g. the interface went down).
    Error,
    /// Timed out, or a signal interrupted the wait.
    Nothing,
}

/// Waits until `fd` is readable, has an error, or `timeout_ms` passes.
pub fn poll_in(fd: &OwnedFd, timeout_ms: i32) -> Result<Ready, CaptureError> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN | libc::POLLERR,
        revents: 0,
    };
    // SAFETY: p is one valid pollfd and the count passed is 1.
    let rc = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EINTR) {
            return Ok(Ready::Nothing);
        }
        return Err(CaptureError::from_io("poll", e));
    }
    Ok(if rc == 0 {
        Ready::Nothing
    } else if p.revents & libc::POLLERR != 0 {
        Ready::Error
    } else {
        Ready::Readable
    })
}

/// Takes (and so clears) the socket's pending error, if any.
pub fn take_socket_error(fd: &OwnedFd) -> Result<Option<io::Error>, CaptureError> {
    let e: i32 = getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, "getsockopt SO_ERROR")?;
    Ok((e != 0).then(|| io::Error::from_raw_os_error(e)))
}

/// A shared read-write mapping of a packet socket's ring, unmapped on drop.
#[derive(Debug)]
pub struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mmap {
    /// Maps `len` bytes of the ring of `fd`.
    pub fn ring(fd: &OwnedFd, len: usize) -> Result<Self, CaptureError> {
        // SAFETY: a fresh shared mapping at an address the kernel picks; no existing memory
        // is affected. The kernel checks len against the ring it allocated (its pages are
        // kernel memory, inserted at mmap time, so neither MAP_POPULATE nor MAP_LOCKED helps).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(CaptureError::last_os("mmap of the packet ring"));
        }
        let ptr = NonNull::new(p.cast::<u8>())
            .ok_or(CaptureError::Config("mmap returned null".into()))?;
        Ok(Self { ptr, len })
    }

    /// Start of the mapping.
    pub fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
}

// SAFETY: Mmap owns its mapping exclusively (like a Box); the raw pointer is what makes it
// !Send by default, and moving the owner to another thread changes nothing about the memory.
unsafe impl Send for Mmap {}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: ptr/len describe a mapping made by Mmap::ring and not yet unmapped; no
        // borrow of it outlives the Mmap (blocks borrow the Ring that owns it).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
