//! Listing the network interfaces a ring can be opened on, in the caller's network namespace
//! (through `if_nameindex` and interface ioctls rather than /sys, which shows the namespace
//! sysfs was mounted in). Not a watcher: it is a snapshot.

use wire::capture::LinkType;

use crate::block::link_type_for_hatype;
use crate::error::CaptureError;
use crate::sys;

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Name, e.g. `eth0`.
    pub name: String,
    /// Interface index (what frames report as `ifindex`).
    pub index: u32,
    /// Link layer of frames captured on it.
    pub link_type: LinkType,
    /// Hardware type (`ARPHRD_*`), `u16::MAX` when the kernel would not say.
    pub hatype: u16,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
}

/// Every interface of the caller's (thread's) network namespace, by index.
pub fn interfaces() -> Result<Vec<Interface>, CaptureError> {
    let mut names = sys::if_list()?;
    names.sort_by_key(|(i, _)| *i);
    let details = sys::if_details(&names)?;
    Ok(names
        .into_iter()
        .zip(details)
        .map(|((index, name), (hatype, up))| Interface {
            name,
            index,
            link_type: link_type_for_hatype(hatype),
            hatype,
            up,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_listed_as_ethernet() {
        // Every Linux network namespace has `lo`; listing needs no privilege.
        let all = interfaces().unwrap();
        let lo = all.iter().find(|i| i.name == "lo").expect("lo listed");
        assert_eq!(lo.hatype, 772);
        assert_eq!(lo.link_type, LinkType::Ethernet);
        assert!(lo.index >= 1);
        assert!(all.windows(2).all(|w| w[0].index < w[1].index));
    }
}
