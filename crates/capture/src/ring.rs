//! One capture socket and its `TPACKET_V3` ring: opening (filter, ring, bind, fanout,
//! promiscuity in an order that lets no unfiltered frame through), handing blocks to the
//! caller in place and back to the kernel, statistics, and run-time filter changes.
//! Not frame parsing (see `block`) and not threads: one `Ring` belongs to one worker.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use wire::bpf::{Program, op};
use wire::capture::LinkType;

use crate::block::{self, BlockInfo, Frames, OFF_BLOCK_STATUS};
use crate::config::{DEFAULT_SNAPLEN, RingConfig};
use crate::error::CaptureError;
use crate::sys::{self, Mmap, Ready};

const PACKET_ADD_MEMBERSHIP: i32 = 1;
const PACKET_RX_RING: i32 = 5;
const PACKET_STATISTICS: i32 = 6;
const PACKET_VERSION: i32 = 10;
const PACKET_FANOUT: i32 = 18;
const TPACKET_V3: i32 = 2;
const PACKET_MR_PROMISC: u16 = 1;
const SO_ATTACH_FILTER: i32 = 26;
const SO_DETACH_FILTER: i32 = 27;
/// Block owned by the kernel (being filled or free).
const TP_STATUS_KERNEL: u32 = 0;
/// Block handed to user space.
const TP_STATUS_USER: u32 = 1;
/// Block closed by its timeout, not because it was full.
const TP_STATUS_BLK_TMO: u32 = 1 << 5;

/// `struct tpacket_req3`: the ring geometry asked of the kernel.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct TpacketReq3 {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
    retire_blk_tov: u32,
    sizeof_priv: u32,
    feature_req_word: u32,
}

/// `struct tpacket_stats_v3`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct TpacketStatsV3 {
    packets: u32,
    drops: u32,
    freeze_q_cnt: u32,
}

/// `struct packet_mreq`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct PacketMreq {
    ifindex: i32,
    kind: u16,
    alen: u16,
    address: [u8; 8],
}

/// Socket counters since the ring was opened. The kernel resets its counters on every read,
/// so the ring accumulates them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames that passed the socket's filter (`tp_packets`), including those dropped.
    pub packets: u64,
    /// Frames dropped because the ring was full (`tp_drops`).
    pub drops: u64,
    /// Times the kernel found the ring full and froze the queue (`tp_freeze_q_cnt`).
    pub freezes: u64,
}

impl Stats {
    /// Frames written to the ring: `packets - drops`.
    pub fn delivered(&self) -> u64 {
        self.packets.saturating_sub(self.drops)
    }
}

/// A `TPACKET_V3` capture ring on one `AF_PACKET` socket.
///
/// Frames are read in place from the shared ring, one block at a time: [`Ring::next_block`]
/// lends a [`Block`], whose drop hands the memory back to the kernel. Dropping the ring closes
/// the socket (which also leaves the fanout group and ends promiscuous mode).
#[derive(Debug)]
pub struct Ring {
    // Declared before `fd` so the mapping goes away before the socket closes.
    map: Mmap,
    fd: OwnedFd,
    block_size: usize,
    block_count: usize,
    next: usize,
    snaplen: u32,
    ifindex: i32,
    link_type: Option<LinkType>,
    totals: Stats,
    /// After a filter change, blocks filled before it may still hold frames the old filter
    /// let through: the new program runs in user space on the next `.1` blocks.
    userland: Option<(Program, usize)>,
}

impl Ring {
    /// Opens a socket and ring as `config` says.
    ///
    /// Order matters: the socket is created with protocol 0 (it receives nothing), a
    /// reject-all filter is attached, the ring is set up and mapped, then the socket is bound,
    /// joins its fanout group and goes promiscuous, and only then is the real filter (or
    /// none) installed. So no frame reaches the ring unfiltered, and none reaches a fanout
    /// member before it has joined the group.
    pub fn open(config: &RingConfig) -> Result<Ring, CaptureError> {
        config.validate(sys::page_size())?;
        let (ifindex, link_type) = match config.interface_name() {
            None => (0, None),
            Some(name) => {
                let idx = sys::if_index(name)
                    .ok_or_else(|| CaptureError::NoSuchInterface(name.to_owned()))?;
                let names = [(idx as u32, name.to_owned())];
                let (hatype, _) = sys::if_details(&names)?
                    .first()
                    .copied()
                    .unwrap_or((u16::MAX, false));
                (idx, Some(block::link_type_for_hatype(hatype)))
            }
        };
        let fd = sys::packet_socket()?;
        attach(&fd, &[reject_all()])?;
        sys::setsockopt(
            &fd,
            libc::SOL_PACKET,
            PACKET_VERSION,
            &TPACKET_V3,
            "setsockopt PACKET_VERSION",
        )?;
        let req = TpacketReq3 {
            block_size: config.block_size,
            block_nr: config.block_count,
            frame_size: config.frame_size,
            frame_nr: (config.block_size / config.frame_size) * config.block_count,
            retire_blk_tov: config.block_timeout_ms,
            sizeof_priv: 0,
            feature_req_word: 0,
        };
        sys::setsockopt(
            &fd,
            libc::SOL_PACKET,
            PACKET_RX_RING,
            &req,
            "setsockopt PACKET_RX_RING",
        )?;
        let block_size = config.block_size as usize;
        let block_count = config.block_count as usize;
        let map = Mmap::ring(&fd, block_size * block_count)?;
        sys::bind_packet(&fd, ifindex)?;
        if let Some(f) = config.fanout {
            sys::setsockopt(
                &fd,
                libc::SOL_PACKET,
                PACKET_FANOUT,
                &f.option_value(),
                "setsockopt PACKET_FANOUT",
            )?;
        }
        if config.promiscuous && ifindex != 0 {
            let mreq = PacketMreq {
                ifindex,
                kind: PACKET_MR_PROMISC,
                alen: 0,
                address: [0; 8],
            };
            sys::setsockopt(
                &fd,
                libc::SOL_PACKET,
                PACKET_ADD_MEMBERSHIP,
                &mreq,
                "setsockopt PACKET_ADD_MEMBERSHIP (promiscuous)",
            )?;
        }
        let mut ring = Ring {
            map,
            fd,
            block_size,
            block_count,
            next: 0,
            snaplen: config.snaplen,
            ifindex,
            link_type,
            totals: Stats::default(),
            userland: None,
        };
        ring.install_filter(config.filter.as_ref())?;
        Ok(ring)
    }

    /// Index of the interface the ring is bound to (0 for all).
    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }

    /// Link layer of the bound interface; `None` on `any`, where each frame has its own
    /// device's link layer (see [`block::Frame::link_type`]).
    pub fn link_type(&self) -> Option<LinkType> {
        self.link_type
    }

    /// Bytes of one block (the largest frame that can be captured whole is a little less).
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Waits up to `timeout` for the next block the kernel has filled (or closed after the
    /// block timeout) and lends it. `Ok(None)` means nothing arrived in time (or a signal
    /// interrupted the wait), so the caller can act on the wall clock while the link is idle.
    /// A block whose headers point outside it is handed back to the kernel and reported as
    /// [`CaptureError::CorruptBlock`]; the next call goes on with the following block. An
    /// error the kernel reports on the socket (`ENETDOWN` when the interface goes down) is
    /// returned once as [`CaptureError::Os`]; the ring stays usable and resumes receiving
    /// when the interface comes back up.
    pub fn next_block(&mut self, timeout: Duration) -> Result<Option<Block<'_>>, CaptureError> {
        let deadline = Instant::now().checked_add(timeout);
        while !self.is_user(self.next) {
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_millis(i32::MAX as u64),
            };
            if left.is_zero() {
                return Ok(None);
            }
            // Round up so a sub-millisecond remainder still waits instead of spinning.
            let ms = i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
            if sys::poll_in(&self.fd, ms)? == Ready::Error
                && let Some(e) = sys::take_socket_error(&self.fd)?
            {
                // Reading SO_ERROR cleared it: the next call waits normally again (after an
                // interface comes back up, the socket receives again by itself).
                return Err(CaptureError::Os {
                    what: "capture socket",
                    source: e,
                });
            }
        }
        let index = self.next;
        match block::validate(self.block_bytes(index)) {
            Ok(info) => Ok(Some(Block {
                ring: self,
                index,
                info,
            })),
            Err(block::Corrupt(reason)) => {
                self.release(index);
                Err(CaptureError::CorruptBlock { index, reason })
            }
        }
    }

    /// Reads the kernel's counters (which it then resets) and returns the totals since open.
    pub fn stats(&mut self) -> Result<Stats, CaptureError> {
        let s: TpacketStatsV3 = sys::getsockopt(
            &self.fd,
            libc::SOL_PACKET,
            PACKET_STATISTICS,
            "getsockopt PACKET_STATISTICS",
        )?;
        self.totals.packets += u64::from(s.packets);
        self.totals.drops += u64::from(s.drops);
        self.totals.freezes += u64::from(s.freeze_q_cnt);
        Ok(self.totals)
    }

    /// Replaces the socket's filter (`None` keeps every frame). The kernel applies it to
    /// frames arriving from now on; frames already in the ring went through the old filter,
    /// so the new program also runs in user space on every block until the whole ring has
    /// been read once. No frame the new filter rejects is returned after this call.
    pub fn set_filter(&mut self, filter: Option<&Program>) -> Result<(), CaptureError> {
        self.install_filter(filter)?;
        self.userland = filter.map(|p| (p.clone(), self.block_count));
        Ok(())
    }

    fn install_filter(&mut self, filter: Option<&Program>) -> Result<(), CaptureError> {
        match kernel_program(filter, self.snaplen) {
            Some(prog) => attach(&self.fd, &prog),
            None => detach(&self.fd),
        }
    }

    /// The block's bytes, for a block the caller owns (`TP_STATUS_USER` seen with Acquire).
    fn block_bytes(&self, index: usize) -> &[u8] {
        let start = index.min(self.block_count - 1) * self.block_size;
        // SAFETY: start + block_size is within the mapping (index < block_count, and the
        // mapping is block_size * block_count bytes). The block is user-owned: the kernel
        // wrote it before releasing it with a store we observed through an Acquire load, and
        // does not touch it again until `release` stores TP_STATUS_KERNEL, which needs
        // `&mut self` and so cannot happen while this borrow lives.
        unsafe { std::slice::from_raw_parts(self.map.ptr().as_ptr().add(start), self.block_size) }
    }

    /// The status word of block `index`, shared with the kernel.
    fn status(&self, index: usize) -> &AtomicU32 {
        debug_assert!(self.map.len() >= self.block_count * self.block_size);
        let off = index.min(self.block_count - 1) * self.block_size + OFF_BLOCK_STATUS;
        let ptr: NonNull<u8> = self.map.ptr();
        // SAFETY: off + 4 lies inside the mapping (a block is at least one page, and the
        // status word is at byte 8 of it); the address is 4-aligned (page-aligned block plus
        // 8). The word lives as long as the mapping, which outlives the returned borrow of
        // self. The kernel updates it concurrently with its own barriers; on our side every
        // access goes through this atomic, as packet_mmap.rst asks.
        unsafe { AtomicU32::from_ptr(ptr.as_ptr().add(off).cast::<u32>()) }
    }

    fn is_user(&self, index: usize) -> bool {
        self.status(index).load(Ordering::Acquire) & TP_STATUS_USER != 0
    }

    /// Hands block `index` back to the kernel and moves on to the next one.
    fn release(&mut self, index: usize) {
        self.status(index)
            .store(TP_STATUS_KERNEL, Ordering::Release);
        self.next = (index + 1) % self.block_count;
        if let Some((_, left)) = &mut self.userland {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.userland = None;
            }
        }
    }
}

impl AsFd for Ring {
    /// The socket, e.g. to wait on several rings with one `epoll`.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A block of frames lent by the kernel; dropping it returns the block to the kernel.
#[derive(Debug)]
pub struct Block<'r> {
    ring: &'r mut Ring,
    index: usize,
    info: BlockInfo,
}

impl Block<'_> {
    /// The frames of the block, in arrival order (clipped to the snap length, and filtered
    /// in user space for a while after [`Ring::set_filter`]).
    pub fn frames(&self) -> Frames<'_> {
        let filter = self.ring.userland.as_ref().map(|(p, _)| p);
        Frames::new(
            self.ring.block_bytes(self.index),
            self.info,
            self.ring.snaplen,
            filter,
        )
    }

    /// Number of frames the kernel put in the block.
    pub fn num_frames(&self) -> u32 {
        self.info.num_pkts
    }

    /// The kernel's sequence number of this block.
    pub fn seq(&self) -> u64 {
        self.info.seq
    }

    /// Position of the block in the ring.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Whether the kernel closed the block because its timeout expired rather than because
    /// it was full (`TP_STATUS_BLK_TMO`): a sign of a quiet link.
    pub fn timed_out(&self) -> bool {
        self.ring.status(self.index).load(Ordering::Acquire) & TP_STATUS_BLK_TMO != 0
    }
}

impl<'a> IntoIterator for &'a Block<'_> {
    type Item = block::Frame<'a>;
    type IntoIter = Frames<'a>;

    fn into_iter(self) -> Frames<'a> {
        self.frames()
    }
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        self.ring.release(self.index);
    }
}

/// `ret #0`: a filter that keeps nothing.
fn reject_all() -> libc::sock_filter {
    libc::sock_filter {
        code: op::RET | op::K,
        jt: 0,
        jf: 0,
        k: 0,
    }
}

/// The program to give the kernel for `filter` and `snaplen`: the filter with every
/// "keep" return clipped to the snap length (the kernel copies as many bytes as the filter
/// returns), a lone `ret #snaplen` when only the snap length is set, or nothing at all.
/// `ret A` cannot be clipped statically; user space clips those frames instead.
fn kernel_program(filter: Option<&Program>, snaplen: u32) -> Option<Vec<libc::sock_filter>> {
    let ret_k = op::RET | op::K;
    match filter {
        Some(p) => Some(
            p.insns()
                .iter()
                .map(|i| libc::sock_filter {
                    code: i.code,
                    jt: i.jt,
                    jf: i.jf,
                    k: if i.code == ret_k && i.k != 0 {
                        i.k.min(snaplen)
                    } else {
                        i.k
                    },
                })
                .collect(),
        ),
        None if snaplen < DEFAULT_SNAPLEN => Some(vec![libc::sock_filter {
            code: ret_k,
            jt: 0,
            jf: 0,
            k: snaplen,
        }]),
        None => None,
    }
}

/// `SO_ATTACH_FILTER`: replaces the socket's filter atomically.
fn attach(fd: &OwnedFd, prog: &[libc::sock_filter]) -> Result<(), CaptureError> {
    let len = u16::try_from(prog.len()).map_err(|_| CaptureError::FilterTooLong(prog.len()))?;
    let fprog = libc::sock_fprog {
        len,
        // The kernel only reads through this pointer, during the call.
        filter: prog.as_ptr().cast_mut(),
    };
    sys::setsockopt(
        fd,
        libc::SOL_SOCKET,
        SO_ATTACH_FILTER,
        &fprog,
        "setsockopt SO_ATTACH_FILTER",
    )
}

/// `SO_DETACH_FILTER`; having no filter to detach is fine.
fn detach(fd: &OwnedFd) -> Result<(), CaptureError> {
    match sys::setsockopt(
        fd,
        libc::SOL_SOCKET,
        SO_DETACH_FILTER,
        &0i32,
        "setsockopt SO_DETACH_FILTER",
    ) {
        Err(e) if e.errno() == Some(libc::ENOENT) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_program_clips_keep_returns_to_the_snaplen() {
        let p = Program::compile("udp port 53", LinkType::Ethernet).unwrap();
        let k = kernel_program(Some(&p), 128).unwrap();
        assert_eq!(k.len(), p.insns().len());
        let rets: Vec<u32> = k
            .iter()
            .filter(|i| i.code == op::RET | op::K)
            .map(|i| i.k)
            .collect();
        assert!(rets.contains(&0) && rets.contains(&128), "{rets:?}");
        assert!(rets.iter().all(|&r| r == 0 || r == 128));
        // Non-return instructions are copied unchanged.
        for (a, b) in k.iter().zip(p.insns()) {
            assert_eq!((a.code, a.jt, a.jf), (b.code, b.jt, b.jf));
        }
    }

    #[test]
    fn no_filter_means_no_program_unless_snaplen_is_short() {
        assert!(kernel_program(None, DEFAULT_SNAPLEN).is_none());
        let k = kernel_program(None, 96).unwrap();
        assert_eq!((k.len(), k[0].code, k[0].k), (1, op::RET | op::K, 96));
    }

    #[test]
    fn stats_delivered_never_underflows() {
        let s = Stats {
            packets: 10,
            drops: 3,
            freezes: 1,
        };
        assert_eq!(s.delivered(), 7);
        assert_eq!(
            Stats {
                packets: 1,
                drops: 5,
                freezes: 0
            }
            .delivered(),
            0
        );
    }

    #[test]
    fn tpacket_structs_have_the_kernel_sizes() {
        assert_eq!(size_of::<TpacketReq3>(), 28);
        assert_eq!(size_of::<TpacketStatsV3>(), 12);
        assert_eq!(size_of::<PacketMreq>(), 16);
        assert_eq!(block::BLOCK_DESC_LEN, 48);
    }
}
