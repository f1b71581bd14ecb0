//! Packet filters in tcpdump syntax, compiled to classic BPF and run in user space.
//!
//! [`Program::compile`] turns a pcap-filter(7) expression into a classic BPF program (the
//! `struct sock_filter` instruction set), so the same program can filter capture files here
//! and later be attached to a socket with `SO_ATTACH_FILTER`. [`Program::matches`] is an
//! allocation-free interpreter with the kernel's rules: a load outside the captured bytes
//! rejects the packet. This is not libpcap: host names and service names are never resolved,
//! and only the subset of the grammar listed in [`Program::compile`] is understood.

mod codegen;
mod parse;

use thiserror::Error;

use crate::capture::LinkType;

/// Largest program accepted, as in the kernel (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;

/// Value returned by compiled programs for a matching packet (libpcap returns the snap
/// length; any non-zero value means "keep").
pub const MATCH_RET: u32 = 262_144;

/// Number of scratch memory words (`BPF_MEMWORDS`).
const MEM_WORDS: usize = 16;

/// Opcode parts of classic BPF (`linux/bpf_common.h`), kept public so programs can be
/// written by hand in tests and tools.
pub mod op {
    /// Instruction class: load into A.
    pub const LD: u16 = 0x00;
    /// Instruction class: load into X.
    pub const LDX: u16 = 0x01;
    /// Instruction class: store A into scratch memory.
    pub const ST: u16 = 0x02;
    /// Instruction class: store X into scratch memory.
    pub const STX: u16 = 0x03;
    /// Instruction class: arithmetic on A.
    pub const ALU: u16 = 0x04;
    /// Instruction class: jumps.
    pub const JMP: u16 = 0x05;
    /// Instruction class: return.
    pub const RET: u16 = 0x06;
    /// Instruction class: register transfers.
    pub const MISC: u16 = 0x07;
    /// Size: 32-bit word.
    pub const W: u16 = 0x00;
    /// Size: 16-bit half word.
    pub const H: u16 = 0x08;
    /// Size: byte.
    pub const B: u16 = 0x10;
    /// Mode: immediate.
    pub const IMM: u16 = 0x00;
    /// Mode: absolute packet offset.
    pub const ABS: u16 = 0x20;
    /// Mode: packet offset relative to X.
    pub const IND: u16 = 0x40;
    /// Mode: scratch memory.
    pub const MEM: u16 = 0x60;
    /// Mode: packet length on the wire.
    pub const LEN: u16 = 0x80;
    /// Mode: `4 * (pkt[k] & 0xf)` (IPv4 header length), LDX only.
    pub const MSH: u16 = 0xa0;
    /// ALU: add.
    pub const ADD: u16 = 0x00;
    /// ALU: subtract.
    pub const SUB: u16 = 0x10;
    /// ALU: multiply.
    pub const MUL: u16 = 0x20;
    /// ALU: divide.
    pub const DIV: u16 = 0x30;
    /// ALU: or.
    pub const OR: u16 = 0x40;
    /// ALU: and.
    pub const AND: u16 = 0x50;
    /// ALU: shift left.
    pub const LSH: u16 = 0x60;
    /// ALU: shift right.
    pub const RSH: u16 = 0x70;
    /// ALU: negate.
    pub const NEG: u16 = 0x80;
    /// ALU: modulo.
    pub const MOD: u16 = 0x90;
    /// ALU: exclusive or.
    pub const XOR: u16 = 0xa0;
    /// Jump: always (32-bit offset in `k`).
    pub const JA: u16 = 0x00;
    /// Jump: if equal.
    pub const JEQ: u16 = 0x10;
    /// Jump: if greater (unsigned).
    pub const JGT: u16 = 0x20;
    /// Jump: if greater or equal (unsigned).
    pub const JGE: u16 = 0x30;
    /// Jump: if any bit set.
    pub const JSET: u16 = 0x40;
    /// Source operand: the constant `k`.
    pub const K: u16 = 0x00;
    /// Source operand: register X.
    pub const X: u16 = 0x08;
    /// Return value: register A.
    pub const A: u16 = 0x10;
    /// MISC: copy A to X.
    pub const TAX: u16 = 0x00;
    /// MISC: copy X to A.
    pub const TXA: u16 = 0x80;
}

/// One classic BPF instruction, laid out like the kernel's `struct sock_filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Insn {
    /// Opcode (class | size | mode, or class | op | source).
    pub code: u16,
    /// Forward offset taken when a conditional jump's test holds.
    pub jt: u8,
    /// Forward offset taken when a conditional jump's test fails.
    pub jf: u8,
    /// Constant operand.
    pub k: u32,
}

impl Insn {
    /// A non-jump instruction.
    pub const fn stmt(code: u16, k: u32) -> Self {
        Self {
            code,
            jt: 0,
            jf: 0,
            k,
        }
    }

    /// A jump instruction.
    pub const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Self {
        Self { code, jt, jf, k }
    }
}

/// Why an expression could not be compiled or a program was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BpfError {
    /// The text does not follow the grammar.
    #[error("syntax error at {position}: {message}")]
    Syntax {
        /// Byte offset in the expression.
        position: usize,
        /// What was expected or found.
        message: String,
    },
    /// The text parses but asks for something that cannot be compiled (a host name, a
    /// qualifier that does not apply, a value out of range).
    #[error("invalid filter at {position}: {message}")]
    Invalid {
        /// Byte offset in the expression.
        position: usize,
        /// What is wrong.
        message: String,
    },
    /// The link type has no known header layout.
    #[error("link type {0} is not supported by the filter compiler")]
    UnsupportedLink(u32),
    /// The compiled program exceeds [`MAX_INSNS`] or has a jump that cannot be encoded.
    #[error("filter program too large: {0}")]
    TooLarge(String),
    /// A hand-written program breaks the classic BPF rules.
    #[error("bad instruction {index}: {message}")]
    BadProgram {
        /// Index of the offending instruction.
        index: usize,
        /// The rule it breaks.
        message: &'static str,
    },
}

impl BpfError {
    /// Byte offset in the expression the error refers to, when it has one.
    pub fn position(&self) -> Option<usize> {
        match self {
            Self::Syntax { position, .. } | Self::Invalid { position, .. } => Some(*position),
            _ => None,
        }
    }
}

/// A validated classic BPF program: every jump lands inside the program, the last
/// instruction returns, every opcode is known and scratch memory indexes are in range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    insns: Vec<Insn>,
}

impl Program {
    /// Compiles a tcpdump-syntax expression for frames of link type `link`.
    ///
    /// Understood: `host`, `net N/len` / `net N mask M` / abbreviated `net 10.1`, `port`,
    /// `portrange A-B`, `proto N`, each with optional direction (`src`, `dst`,
    /// `src or dst`, `src and dst`) and protocol (`ip`, `ip6`, `arp`, `rarp`, `tcp`, `udp`,
    /// `sctp`) qualifiers; the protocols `ip`, `ip6`, `arp`, `rarp`, `tcp`, `udp`, `sctp`,
    /// `icmp`, `icmp6` alone; `vlan [ID]` (later tests look 4 bytes further, as in libpcap);
    /// `less N`, `greater N`; `not`/`!`, `and`/`&&`, `or`/`||` and parentheses. As in
    /// libpcap, `not` binds tightest while `and` and `or` have equal precedence and group
    /// left to right, and a bare value repeats the previous qualifiers
    /// (`host 10.0.0.1 or 10.0.0.2`). An empty expression matches everything.
    /// Addresses must be numeric: a name is an error naming it.
    pub fn compile(expr: &str, link: LinkType) -> Result<Program, BpfError> {
        let layout = parse::Layout::for_link(link)?;
        let cond = parse::parse(expr, layout)?;
        let insns = codegen::generate(&cond)?;
        Program::from_insns(insns)
    }

    /// Wraps hand-written instructions after checking them like the kernel does.
    pub fn from_insns(insns: Vec<Insn>) -> Result<Program, BpfError> {
        validate(&insns)?;
        Ok(Program { insns })
    }

    /// Whether the program rejects every frame without looking at it (`arp` on a raw IP
    /// link, `ip and ip6`); tcpdump refuses such expressions, a caller may want to warn.
    pub fn rejects_all(&self) -> bool {
        matches!(
            self.insns.as_slice(),
            [Insn {
                code: 0x06,
                k: 0,
                ..
            }]
        )
    }

    /// The instructions, ready to be handed to `SO_ATTACH_FILTER`.
    pub fn insns(&self) -> &[Insn] {
        &self.insns
    }

    /// Whether the program keeps a frame of `packet` (captured bytes) whose length on the
    /// wire was `wire_len`.
    pub fn matches(&self, packet: &[u8], wire_len: u32) -> bool {
        self.run(packet, wire_len) != 0
    }

    /// Runs the program and returns its result (0 rejects; otherwise the number of bytes to
    /// keep). Loads outside `packet` and division by zero return 0, as in the kernel.
    pub fn run(&self, packet: &[u8], wire_len: u32) -> u32 {
        run(&self.insns, packet, wire_len)
    }
}

impl std::fmt::Display for Program {
    /// Lists the program like `tcpdump -d` does, one instruction per line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, ins) in self.insns.iter().enumerate() {
            let (name, arg) = disasm(ins);
            write!(f, "({i:03}) {name:<8} {arg}")?;
            if ins.code & 0x07 == op::JMP {
                let next = i + 1;
                if ins.code & 0xf0 == op::JA {
                    write!(f, " -> {}", next + ins.k as usize)?;
                } else {
                    let pad = 17usize.saturating_sub(arg.len());
                    write!(
                        f,
                        "{:pad$}jt {}\tjf {}",
                        "",
                        next + usize::from(ins.jt),
                        next + usize::from(ins.jf)
                    )?;
                }
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// Mnemonic and operand of one instruction, in libpcap's notation.
fn disasm(ins: &Insn) -> (&'static str, String) {
    let k = ins.k;
    let load_name = |code: u16| match code & 0x18 {
        op::H => "ldh",
        op::B => "ldb",
        _ => "ld",
    };
    let src = |code: u16| {
        if code & op::X != 0 {
            "x".to_string()
        } else {
            format!("#{k:#x}")
        }
    };
    match ins.code {
        c if c & 0x07 == op::LD => match c & 0xe0 {
            op::ABS => (load_name(c), format!("[{k}]")),
            op::IND => (load_name(c), format!("[x + {k}]")),
            op::MEM => ("ld", format!("M[{k}]")),
            op::LEN => ("ld", "#pktlen".into()),
            _ => ("ld", format!("#{k:#x}")),
        },
        c if c & 0x07 == op::LDX => match c & 0xe0 {
            op::MSH => ("ldxb", format!("4*([{k}]&0xf)")),
            op::MEM => ("ldx", format!("M[{k}]")),
            op::LEN => ("ldx", "#pktlen".into()),
            _ => ("ldx", format!("#{k:#x}")),
        },
        c if c & 0x07 == op::ST => ("st", format!("M[{k}]")),
        c if c & 0x07 == op::STX => ("stx", format!("M[{k}]")),
        c if c & 0x07 == op::ALU => {
            let name = match c & 0xf0 {
                op::ADD => "add",
                op::SUB => "sub",
                op::MUL => "mul",
                op::DIV => "div",
                op::MOD => "mod",
                op::OR => "or",
                op::AND => "and",
                op::XOR => "xor",
                op::LSH => "lsh",
                op::RSH => "rsh",
                _ => return ("neg", String::new()),
            };
            (name, src(c))
        }
        c if c & 0x07 == op::JMP => {
            let name = match c & 0xf0 {
                op::JA => return ("ja", String::new()),
                op::JEQ => "jeq",
                op::JGT => "jgt",
                op::JGE => "jge",
                _ => "jset",
            };
            (name, src(c))
        }
        c if c & 0x07 == op::RET => {
            if c & 0x18 == op::A {
                ("ret", "a".into())
            } else {
                ("ret", format!("#{k}"))
            }
        }
        c => (
            if c & 0xf8 == op::TXA { "txa" } else { "tax" },
            String::new(),
        ),
    }
}

/// Reads `size` bytes (1, 2 or 4) big-endian at `off`, or `None` past the end.
fn load(packet: &[u8], off: u64, size: u16) -> Option<u32> {
    let start = usize::try_from(off).ok()?;
    match size {
        op::B => packet.get(start).map(|&b| u32::from(b)),
        op::H => {
            let b = packet.get(start..start.checked_add(2)?)?;
            Some(u32::from(u16::from_be_bytes([b[0], b[1]])))
        }
        _ => {
            let b = packet.get(start..start.checked_add(4)?)?;
            Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        }
    }
}

/// The interpreter. Every step moves `pc` forward, so it ends within `insns.len()` steps.
fn run(insns: &[Insn], packet: &[u8], wire_len: u32) -> u32 {
    let mut a: u32 = 0;
    let mut x: u32 = 0;
    let mut mem = [0u32; MEM_WORDS];
    let mut pc: usize = 0;
    while let Some(ins) = insns.get(pc) {
        pc += 1;
        let k = ins.k;
        let code = ins.code;
        match code & 0x07 {
            op::LD => {
                let v = match code & 0xe0 {
                    op::IMM => Some(k),
                    op::ABS => load(packet, u64::from(k), code & 0x18),
                    op::IND => load(packet, u64::from(x) + u64::from(k), code & 0x18),
                    op::MEM => mem.get(k as usize).copied(),
                    op::LEN => Some(wire_len),
                    _ => None,
                };
                match v {
                    Some(v) => a = v,
                    None => return 0,
                }
            }
            op::LDX => {
                let v = match code & 0xe0 {
                    op::IMM => Some(k),
                    op::MEM => mem.get(k as usize).copied(),
                    op::LEN => Some(wire_len),
                    op::MSH => load(packet, u64::from(k), op::B).map(|b| (b & 0x0f) * 4),
                    _ => None,
                };
                match v {
                    Some(v) => x = v,
                    None => return 0,
                }
            }
            op::ST | op::STX => {
                let v = if code & 0x07 == op::ST { a } else { x };
                match mem.get_mut(k as usize) {
                    Some(m) => *m = v,
                    None => return 0,
                }
            }
            op::ALU => {
                let src = if code & op::X != 0 { x } else { k };
                a = match code & 0xf0 {
                    op::ADD => a.wrapping_add(src),
                    op::SUB => a.wrapping_sub(src),
                    op::MUL => a.wrapping_mul(src),
                    op::DIV => match a.checked_div(src) {
                        Some(v) => v,
                        None => return 0,
                    },
                    op::MOD => match a.checked_rem(src) {
                        Some(v) => v,
                        None => return 0,
                    },
                    op::OR => a | src,
                    op::AND => a & src,
                    op::XOR => a ^ src,
                    // Shifts of 32 or more give 0, as the kernel's interpreter does.
                    op::LSH => a.checked_shl(src).unwrap_or(0),
                    op::RSH => a.checked_shr(src).unwrap_or(0),
                    op::NEG => a.wrapping_neg(),
                    _ => return 0,
                };
            }
            op::JMP => {
                let op_code = code & 0xf0;
                let off = if op_code == op::JA {
                    k as usize
                } else {
                    let src = if code & op::X != 0 { x } else { k };
                    let taken = match op_code {
                        op::JEQ => a == src,
                        op::JGT => a > src,
                        op::JGE => a >= src,
                        op::JSET => a & src != 0,
                        _ => return 0,
                    };
                    usize::from(if taken { ins.jt } else { ins.jf })
                };
                pc = match pc.checked_add(off) {
                    Some(p) => p,
                    None => return 0,
                };
            }
            op::RET => {
                return if code & 0x18 == op::A { a } else { k };
            }
            _ => {
                // MISC
                if code & 0xf8 == op::TXA {
                    a = x;
                } else {
                    x = a;
                }
            }
        }
    }
    0
}

/// Checks a program with the kernel's rules (`sk_chk_filter`).
fn validate(insns: &[Insn]) -> Result<(), BpfError> {
    let bad = |index: usize, message: &'static str| Err(BpfError::BadProgram { index, message });
    if insns.is_empty() {
        return bad(0, "empty program");
    }
    if insns.len() > MAX_INSNS {
        return Err(BpfError::TooLarge(format!(
            "{} instructions, at most {MAX_INSNS}",
            insns.len()
        )));
    }
    let n = insns.len();
    for (i, ins) in insns.iter().enumerate() {
        let code = ins.code;
        let k = ins.k;
        let mem_ok = (k as usize) < MEM_WORDS;
        let ok = match code {
            // LD
            0x20 | 0x28 | 0x30 | 0x40 | 0x48 | 0x50 | 0x00 | 0x80 => true,
            // LDX
            0x01 | 0x81 | 0xb1 => true,
            // LD MEM, LDX MEM, ST, STX
            0x60 | 0x61 | 0x02 | 0x03 => {
                if !mem_ok {
                    return bad(i, "scratch memory index out of range");
                }
                true
            }
            // ALU with K
            0x04 | 0x14 | 0x24 | 0x44 | 0x54 | 0x64 | 0x74 | 0xa4 | 0x84 => true,
            0x34 | 0x94 => {
                if k == 0 {
                    return bad(i, "division by constant zero");
                }
                true
            }
            // ALU with X
            0x0c | 0x1c | 0x2c | 0x3c | 0x4c | 0x5c | 0x6c | 0x7c | 0x9c | 0xac => true,
            // JA
            0x05 => {
                if (k as usize) >= n - i - 1 {
                    return bad(i, "jump out of range");
                }
                true
            }
            // conditional jumps, K and X
            0x15 | 0x25 | 0x35 | 0x45 | 0x1d | 0x2d | 0x3d | 0x4d => {
                let rest = n - i - 1;
                if usize::from(ins.jt) >= rest || usize::from(ins.jf) >= rest {
                    return bad(i, "jump out of range");
                }
                true
            }
            // RET K, RET A
            0x06 | 0x16 => true,
            // TAX, TXA
            0x07 | 0x87 => true,
            _ => false,
        };
        if !ok {
            return bad(i, "unknown opcode");
        }
    }
    if insns[n - 1].code & 0x07 != op::RET {
        return bad(n - 1, "program does not end in a return");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::op::*;
    use super::*;

    fn prog(insns: &[Insn]) -> Program {
        Program::from_insns(insns.to_vec()).expect("valid program")
    }

    fn ret_a(pre: &[Insn]) -> Program {
        let mut v = pre.to_vec();
        v.push(Insn::stmt(RET | A, 0));
        prog(&v)
    }

    #[test]
    fn loads_absolute_sizes_big_endian() {
        let pkt = [0x12, 0x34, 0x56, 0x78, 0x9a];
        assert_eq!(ret_a(&[Insn::stmt(LD | B | ABS, 4)]).run(&pkt, 5), 0x9a);
        assert_eq!(ret_a(&[Insn::stmt(LD | H | ABS, 1)]).run(&pkt, 5), 0x3456);
        assert_eq!(
            ret_a(&[Insn::stmt(LD | W | ABS, 1)]).run(&pkt, 5),
            0x3456_789a
        );
    }

    #[test]
    fn out_of_bounds_load_rejects() {
        let pkt = [1, 2, 3, 4];
        // A returns non-zero if the load succeeded; out-of-bounds must give 0.
        let p = prog(&[Insn::stmt(LD | W | ABS, 1), Insn::stmt(RET | K, 7)]);
        assert_eq!(p.run(&pkt, 4), 0);
        let p = prog(&[Insn::stmt(LD | W | ABS, 0), Insn::stmt(RET | K, 7)]);
        assert_eq!(p.run(&pkt, 4), 7);
        let p = prog(&[Insn::stmt(LD | B | ABS, u32::MAX), Insn::stmt(RET | K, 7)]);
        assert_eq!(p.run(&pkt, 4), 0);
        // Indirect: X + k overflowing u32 must not wrap around to a valid offset.
        let p = prog(&[
            Insn::stmt(LDX | W | IMM, u32::MAX),
            Insn::stmt(LD | B | IND, 2),
            Insn::stmt(RET | K, 7),
        ]);
        assert_eq!(p.run(&pkt, 4), 0);
        assert!(!p.matches(&[], 0));
    }

    #[test]
    fn indirect_and_msh_loads() {
        // IPv4 header length 20 (0x45) at offset 0; read the half word at X + 2.
        let mut pkt = [0u8; 24];
        pkt[0] = 0x45;
        pkt[22] = 0xab;
        pkt[23] = 0xcd;
        let p = ret_a(&[Insn::stmt(LDX | B | MSH, 0), Insn::stmt(LD | H | IND, 2)]);
        assert_eq!(p.run(&pkt, 24), 0xabcd);
        let p = ret_a(&[Insn::stmt(LDX | B | MSH, 0), Insn::stmt(MISC | TXA, 0)]);
        assert_eq!(p.run(&pkt, 24), 20);
    }

    #[test]
    fn len_imm_and_memory() {
        let p = ret_a(&[Insn::stmt(LD | W | LEN, 0)]);
        assert_eq!(p.run(&[0; 3], 1500), 1500);
        let p = ret_a(&[
            Insn::stmt(LD | IMM, 42),
            Insn::stmt(ST, 3),
            Insn::stmt(LD | IMM, 0),
            Insn::stmt(LDX | MEM, 3),
            Insn::stmt(MISC | TXA, 0),
        ]);
        assert_eq!(p.run(&[], 0), 42);
        let p = ret_a(&[
            Insn::stmt(LDX | IMM, 9),
            Insn::stmt(STX, 15),
            Insn::stmt(LD | MEM, 15),
        ]);
        assert_eq!(p.run(&[], 0), 9);
        let p = ret_a(&[Insn::stmt(LDX | LEN, 0), Insn::stmt(MISC | TXA, 0)]);
        assert_eq!(p.run(&[], 77), 77);
    }

    #[test]
    fn alu_operations() {
        let cases: [(u16, u32, u32, u32); 11] = [
            (ADD, 10, 3, 13),
            (SUB, 10, 3, 7),
            (MUL, 10, 3, 30),
            (DIV, 10, 3, 3),
            (MOD, 10, 3, 1),
            (OR, 0b1010, 0b0101, 0b1111),
            (AND, 0b1010, 0b0110, 0b0010),
            (XOR, 0b1010, 0b0110, 0b1100),
            (LSH, 1, 4, 16),
            (RSH, 256, 4, 16),
            (SUB, 0, 1, u32::MAX),
        ];
        for (alu, a, k, want) in cases {
            let p = ret_a(&[Insn::stmt(LD | IMM, a), Insn::stmt(ALU | alu | K, k)]);
            assert_eq!(p.run(&[], 0), want, "op {alu:#x} with k");
            let p = ret_a(&[
                Insn::stmt(LDX | IMM, k),
                Insn::stmt(LD | IMM, a),
                Insn::stmt(ALU | alu | X, 0),
            ]);
            assert_eq!(p.run(&[], 0), want, "op {alu:#x} with x");
        }
        let p = ret_a(&[Insn::stmt(LD | IMM, 5), Insn::stmt(ALU | NEG, 0)]);
        assert_eq!(p.run(&[], 0), 5u32.wrapping_neg());
        let p = ret_a(&[Insn::stmt(LD | IMM, 5), Insn::stmt(ALU | LSH | K, 40)]);
        assert_eq!(p.run(&[], 0), 0);
    }

    #[test]
    fn division_by_zero_x_rejects_and_by_zero_k_is_refused() {
        let p = prog(&[
            Insn::stmt(LD | IMM, 5),
            Insn::stmt(ALU | DIV | X, 0),
            Insn::stmt(RET | K, 1),
        ]);
        assert_eq!(p.run(&[], 0), 0);
        let e = Program::from_insns(vec![Insn::stmt(ALU | DIV | K, 0), Insn::stmt(RET | K, 1)]);
        assert!(matches!(e, Err(BpfError::BadProgram { index: 0, .. })));
    }

    #[test]
    fn jumps_conditional_and_always() {
        // A = 5; test each condition; return 1 when taken, 2 otherwise.
        let cases: [(u16, u32, bool); 8] = [
            (JEQ, 5, true),
            (JEQ, 4, false),
            (JGT, 4, true),
            (JGT, 5, false),
            (JGE, 5, true),
            (JGE, 6, false),
            (JSET, 4, true),
            (JSET, 2, false),
        ];
        for (j, k, taken) in cases {
            let p = prog(&[
                Insn::stmt(LD | IMM, 5),
                Insn::jump(JMP | j | K, k, 0, 1),
                Insn::stmt(RET | K, 1),
                Insn::stmt(RET | K, 2),
            ]);
            assert_eq!(p.run(&[], 0), if taken { 1 } else { 2 }, "{j:#x} {k}");
            let p = prog(&[
                Insn::stmt(LDX | IMM, k),
                Insn::stmt(LD | IMM, 5),
                Insn::jump(JMP | j | X, 0, 0, 1),
                Insn::stmt(RET | K, 1),
                Insn::stmt(RET | K, 2),
            ]);
            assert_eq!(p.run(&[], 0), if taken { 1 } else { 2 }, "{j:#x} x {k}");
        }
        let p = prog(&[
            Insn::stmt(JMP | JA, 1),
            Insn::stmt(RET | K, 1),
            Insn::stmt(RET | K, 2),
        ]);
        assert_eq!(p.run(&[], 0), 2);
    }

    #[test]
    fn misc_tax() {
        let p = ret_a(&[
            Insn::stmt(LD | IMM, 3),
            Insn::stmt(MISC | TAX, 0),
            Insn::stmt(LD | IMM, 0),
            Insn::stmt(MISC | TXA, 0),
        ]);
        assert_eq!(p.run(&[], 0), 3);
    }

    #[test]
    fn listing_looks_like_tcpdump() {
        let p = Program::compile("ip", LinkType::Ethernet).unwrap();
        assert_eq!(
            p.to_string(),
            "(000) ldh      [12]\n\
             (001) jeq      #0x800           jt 2\tjf 3\n\
             (002) ret      #262144\n\
             (003) ret      #0\n"
        );
        let p = Program::compile("tcp port 80", LinkType::Ethernet).unwrap();
        let text = p.to_string();
        assert!(text.contains("ldxb     4*([14]&0xf)"), "{text}");
        assert!(text.contains("ldh      [x + 14]"), "{text}");
        assert!(text.contains("jset     #0x1fff"), "{text}");
        assert_eq!(text.lines().count(), p.insns().len());
    }

    #[test]
    fn rejects_all_is_reported() {
        assert!(
            Program::compile("arp", LinkType::Raw)
                .unwrap()
                .rejects_all()
        );
        assert!(
            Program::compile("ip and ip6", LinkType::Ipv4)
                .unwrap()
                .rejects_all()
        );
        assert!(!Program::compile("ip", LinkType::Raw).unwrap().rejects_all());
        assert!(!Program::compile("", LinkType::Raw).unwrap().rejects_all());
    }

    #[test]
    fn validation_rules() {
        let err = |v: Vec<Insn>| Program::from_insns(v).unwrap_err();
        assert!(matches!(err(vec![]), BpfError::BadProgram { index: 0, .. }));
        assert!(matches!(
            err(vec![Insn::stmt(LD | IMM, 1)]),
            BpfError::BadProgram {
                index: 0,
                message: "program does not end in a return"
            }
        ));
        assert!(matches!(
            err(vec![
                Insn::jump(JMP | JEQ | K, 0, 1, 0),
                Insn::stmt(RET | K, 0)
            ]),
            BpfError::BadProgram {
                index: 0,
                message: "jump out of range"
            }
        ));
        assert!(matches!(
            err(vec![Insn::stmt(JMP | JA, 1), Insn::stmt(RET | K, 0)]),
            BpfError::BadProgram {
                index: 0,
                message: "jump out of range"
            }
        ));
        assert!(matches!(
            err(vec![Insn::stmt(ST, 16), Insn::stmt(RET | K, 0)]),
            BpfError::BadProgram {
                index: 0,
                message: "scratch memory index out of range"
            }
        ));
        assert!(matches!(
            err(vec![Insn::stmt(0xff, 0), Insn::stmt(RET | K, 0)]),
            BpfError::BadProgram {
                index: 0,
                message: "unknown opcode"
            }
        ));
        assert!(matches!(
            err(vec![Insn::stmt(RET | K, 0); MAX_INSNS + 1]),
            BpfError::TooLarge(_)
        ));
        assert_eq!(prog(&[Insn::stmt(RET | K, 9)]).insns().len(), 1);
    }
}
