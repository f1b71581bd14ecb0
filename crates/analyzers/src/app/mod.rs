//! Application detection: a label per flow from payload signatures first, then well-known
//! ports as the last resort, with a confidence like nDPI's ("DPI" vs "port"). It is not a
//! dissector: the signatures look at the first payload packets of each direction, as pure
//! functions over `&[u8]`, and never keep or reassemble bytes.

mod sig;

pub use sig::detect;

/// An application protocol. Numbers are stable (they are stored in the connection table).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum App {
    #[default]
    Unknown = 0,
    Dns = 1,
    Mdns = 2,
    Llmnr = 3,
    Tls = 4,
    Dtls = 5,
    Http = 6,
    Quic = 7,
    Ssh = 8,
    Dhcp = 9,
    Dhcpv6 = 10,
    Ntp = 11,
    Smtp = 12,
    Imap = 13,
    Pop3 = 14,
    Ftp = 15,
    Bgp = 16,
    Sip = 17,
    Rtp = 18,
    Rtcp = 19,
    Mqtt = 20,
    Redis = 21,
    Postgres = 22,
    Mysql = 23,
    Smb = 24,
    NetBios = 25,
    Rdp = 26,
    Stun = 27,
    Snmp = 28,
    Syslog = 29,
    Ssdp = 30,
}

/// Every label, in numeric order (index = number).
pub const ALL: [App; 31] = [
    App::Unknown,
    App::Dns,
    App::Mdns,
    App::Llmnr,
    App::Tls,
    App::Dtls,
    App::Http,
    App::Quic,
    App::Ssh,
    App::Dhcp,
    App::Dhcpv6,
    App::Ntp,
    App::Smtp,
    App::Imap,
    App::Pop3,
    App::Ftp,
    App::Bgp,
    App::Sip,
    App::Rtp,
    App::Rtcp,
    App::Mqtt,
    App::Redis,
    App::Postgres,
    App::Mysql,
    App::Smb,
    App::NetBios,
    App::Rdp,
    App::Stun,
    App::Snmp,
    App::Syslog,
    App::Ssdp,
];

impl App {
    /// The label's name in outputs.
    pub fn name(self) -> &'static str {
        match self {
            App::Unknown => "unknown",
            App::Dns => "dns",
            App::Mdns => "mdns",
            App::Llmnr => "llmnr",
            App::Tls => "tls",
            App::Dtls => "dtls",
            App::Http => "http",
            App::Quic => "quic",
            App::Ssh => "ssh",
            App::Dhcp => "dhcp",
            App::Dhcpv6 => "dhcpv6",
            App::Ntp => "ntp",
            App::Smtp => "smtp",
            App::Imap => "imap",
            App::Pop3 => "pop3",
            App::Ftp => "ftp",
            App::Bgp => "bgp",
            App::Sip => "sip",
            App::Rtp => "rtp",
            App::Rtcp => "rtcp",
            App::Mqtt => "mqtt",
            App::Redis => "redis",
            App::Postgres => "postgresql",
            App::Mysql => "mysql",
            App::Smb => "smb",
            App::NetBios => "netbios",
            App::Rdp => "rdp",
            App::Stun => "stun",
            App::Snmp => "snmp",
            App::Syslog => "syslog",
            App::Ssdp => "ssdp",
        }
    }

    /// The label stored under number `n` (`Unknown` for numbers not in use).
    pub fn from_u16(n: u16) -> App {
        ALL.get(usize::from(n)).copied().unwrap_or(App::Unknown)
    }
}

/// How a label was decided.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Confidence {
    /// Not decided.
    #[default]
    Unknown = 0,
    /// A payload signature matched.
    Dpi = 1,
    /// No signature matched; the well-known port decided.
    Port = 2,
}

impl Confidence {
    /// Lower-case name for outputs.
    pub fn name(self) -> &'static str {
        match self {
            Confidence::Unknown => "unknown",
            Confidence::Dpi => "dpi",
            Confidence::Port => "port",
        }
    }

    /// The confidence stored under number `n`.
    pub fn from_u8(n: u8) -> Confidence {
        match n {
            1 => Confidence::Dpi,
            2 => Confidence::Port,
            _ => Confidence::Unknown,
        }
    }
}

/// Transport of a flow, as signatures need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
}

/// What a signature pass needs to know besides the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    pub transport: Transport,
    /// The payload travels from the flow's initiator.
    pub from_initiator: bool,
    /// The initiator's and the responder's ports.
    pub initiator_port: u16,
    pub responder_port: u16,
}

impl Context {
    /// True when either side uses `port`.
    pub fn port(&self, port: u16) -> bool {
        self.initiator_port == port || self.responder_port == port
    }
}

/// The well-known-port guess for a flow no signature recognized: the responder's port first,
/// then the initiator's (a flow picked up mid-stream may be seen from the server).
pub fn by_port(transport: Transport, initiator_port: u16, responder_port: u16) -> App {
    let one = |p: u16| -> App {
        match (transport, p) {
            (_, 53) => App::Dns,
            (_, 5353) => App::Mdns,
            (_, 5355) => App::Llmnr,
            (Transport::Tcp, 443 | 465 | 993 | 995 | 853 | 8443) => App::Tls,
            (Transport::Udp, 443) => App::Quic,
            (Transport::Tcp, 80 | 8080) => App::Http,
            (Transport::Tcp, 22) => App::Ssh,
            (Transport::Udp, 67 | 68) => App::Dhcp,
            (Transport::Udp, 546 | 547) => App::Dhcpv6,
            (Transport::Udp, 123) => App::Ntp,
            (Transport::Tcp, 25 | 587) => App::Smtp,
            (Transport::Tcp, 143) => App::Imap,
            (Transport::Tcp, 110) => App::Pop3,
            (Transport::Tcp, 21) => App::Ftp,
            (Transport::Tcp, 179) => App::Bgp,
            (_, 5060 | 5061) => App::Sip,
            (Transport::Tcp, 1883 | 8883) => App::Mqtt,
            (Transport::Tcp, 6379) => App::Redis,
            (Transport::Tcp, 5432) => App::Postgres,
            (Transport::Tcp, 3306) => App::Mysql,
            (Transport::Tcp, 445) => App::Smb,
            (_, 137..=139) => App::NetBios,
            (_, 3389) => App::Rdp,
            (_, 3478) => App::Stun,
            (Transport::Udp, 161 | 162) => App::Snmp,
            (Transport::Udp, 514) => App::Syslog,
            (Transport::Udp, 1900) => App::Ssdp,
            _ => App::Unknown,
        }
    };
    match one(responder_port) {
        App::Unknown => one(initiator_port),
        a => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_names_are_unique() {
        for (i, a) in ALL.iter().enumerate() {
            assert_eq!(*a as u16 as usize, i);
            assert_eq!(App::from_u16(i as u16), *a);
        }
        assert_eq!(App::from_u16(999), App::Unknown);
        let mut names: Vec<_> = ALL.iter().map(|a| a.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert_eq!(
            Confidence::from_u8(Confidence::Port as u8),
            Confidence::Port
        );
    }

    #[test]
    fn ports_are_the_last_resort_responder_first() {
        assert_eq!(by_port(Transport::Tcp, 51000, 443), App::Tls);
        assert_eq!(by_port(Transport::Udp, 51000, 443), App::Quic);
        assert_eq!(by_port(Transport::Tcp, 443, 51000), App::Tls);
        assert_eq!(by_port(Transport::Udp, 5353, 5353), App::Mdns);
        assert_eq!(by_port(Transport::Tcp, 53, 22), App::Ssh);
        assert_eq!(by_port(Transport::Udp, 40000, 40001), App::Unknown);
    }
}
