//! Lowering of a filter's boolean tree of packet tests to classic BPF (not the parser).
//!
//! Each test becomes loads plus one conditional jump whose two branches stay open until the
//! code they lead to is placed ("backpatching"), so every jump goes forward. Conditional
//! jumps reach at most 255 instructions ahead; when an open branch would have to cross more,
//! it is routed through an unconditional `ja` (32-bit offset) placed before the code it skips.

use super::{BpfError, Insn, MATCH_RET, MAX_INSNS, op};

/// Where a test reads its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Load {
    /// `size` bytes at a fixed offset.
    Abs { size: u16, off: u32 },
    /// `size` bytes at `off` plus the IPv4 header length read from the byte at `ihl`.
    Ind { size: u16, ihl: u32, off: u32 },
    /// The frame's length on the wire.
    Len,
}

/// How a test compares the loaded (and masked) value with its constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Gt,
    Ge,
    /// Any bit of the constant set.
    Set,
}

/// One packet test: `(load & mask) cmp k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Test {
    pub load: Load,
    pub mask: Option<u32>,
    pub cmp: Cmp,
    pub k: u32,
}

/// A filter as a boolean tree of tests. Built through the folding constructors, so
/// constants only ever appear at the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cond {
    Const(bool),
    Test(Test),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
}

impl Cond {
    /// A single test.
    pub fn test(load: Load, mask: Option<u32>, cmp: Cmp, k: u32) -> Cond {
        Cond::Test(Test { load, mask, cmp, k })
    }

    /// `load == k`.
    pub fn eq(load: Load, k: u32) -> Cond {
        Cond::test(load, None, Cmp::Eq, k)
    }

    /// Conjunction, folding constants.
    pub fn and(a: Cond, b: Cond) -> Cond {
        match (a, b) {
            (Cond::Const(false), _) | (_, Cond::Const(false)) => Cond::Const(false),
            (Cond::Const(true), x) | (x, Cond::Const(true)) => x,
            (a, b) => Cond::And(Box::new(a), Box::new(b)),
        }
    }

    /// Disjunction, folding constants.
    pub fn or(a: Cond, b: Cond) -> Cond {
        match (a, b) {
            (Cond::Const(true), _) | (_, Cond::Const(true)) => Cond::Const(true),
            (Cond::Const(false), x) | (x, Cond::Const(false)) => x,
            (a, b) => Cond::Or(Box::new(a), Box::new(b)),
        }
    }

    /// Negation, folding constants and double negation.
    pub fn negate(a: Cond) -> Cond {
        match a {
            Cond::Const(v) => Cond::Const(!v),
            Cond::Not(inner) => *inner,
            a => Cond::Not(Box::new(a)),
        }
    }

    /// Upper bound of the instructions `emit` produces for this tree (including the `ja`
    /// trampolines each `and`/`or` may add).
    fn size_bound(&self) -> usize {
        match self {
            Cond::Const(_) => 1,
            Cond::Test(t) => {
                let load = match t.load {
                    Load::Ind { .. } => 2,
                    _ => 1,
                };
                load + usize::from(t.mask.is_some()) + 1
            }
            Cond::And(a, b) | Cond::Or(a, b) => a.size_bound() + b.size_bound() + 1,
            Cond::Not(a) => a.size_bound(),
        }
    }
}

/// An open branch: the true or false offset of a conditional jump, or a `ja`.
#[derive(Debug, Clone, Copy)]
enum Exit {
    Jt(usize),
    Jf(usize),
    Ja(usize),
}

/// Open branches of emitted code, by outcome.
struct Exits {
    t: Vec<Exit>,
    f: Vec<Exit>,
}

struct Gen {
    code: Vec<Insn>,
}

/// Compiles a tree into a program returning [`MATCH_RET`] or 0.
pub(crate) fn generate(cond: &Cond) -> Result<Vec<Insn>, BpfError> {
    let ret = |k| Insn::stmt(op::RET | op::K, k);
    let mut g = Gen { code: Vec::new() };
    match cond {
        Cond::Const(true) => return Ok(vec![ret(MATCH_RET)]),
        Cond::Const(false) => return Ok(vec![ret(0)]),
        _ => {}
    }
    if cond.size_bound() + 2 > MAX_INSNS * 2 {
        return Err(BpfError::TooLarge(format!(
            "more than {MAX_INSNS} instructions"
        )));
    }
    let exits = g.emit(cond)?;
    let yes = g.code.len();
    g.code.push(ret(MATCH_RET));
    let no = g.code.len();
    g.code.push(ret(0));
    g.patch_all(&exits.t, yes)?;
    g.patch_all(&exits.f, no)?;
    if g.code.len() > MAX_INSNS {
        return Err(BpfError::TooLarge(format!(
            "{} instructions, at most {MAX_INSNS}",
            g.code.len()
        )));
    }
    Ok(g.code)
}

impl Gen {
    fn emit(&mut self, c: &Cond) -> Result<Exits, BpfError> {
        match c {
            Cond::Const(v) => {
                // Only reachable for a constant below the root, which the folding
                // constructors never build; kept correct anyway.
                let i = self.code.len();
                self.code.push(Insn::stmt(op::JMP | op::JA, 0));
                let e = vec![Exit::Ja(i)];
                Ok(if *v {
                    Exits {
                        t: e,
                        f: Vec::new(),
                    }
                } else {
                    Exits {
                        t: Vec::new(),
                        f: e,
                    }
                })
            }
            Cond::Test(t) => {
                match t.load {
                    Load::Abs { size, off } => {
                        self.code.push(Insn::stmt(op::LD | size | op::ABS, off));
                    }
                    Load::Ind { size, ihl, off } => {
                        self.code.push(Insn::stmt(op::LDX | op::B | op::MSH, ihl));
                        self.code.push(Insn::stmt(op::LD | size | op::IND, off));
                    }
                    Load::Len => self.code.push(Insn::stmt(op::LD | op::W | op::LEN, 0)),
                }
                if let Some(m) = t.mask {
                    self.code.push(Insn::stmt(op::ALU | op::AND | op::K, m));
                }
                let j = match t.cmp {
                    Cmp::Eq => op::JEQ,
                    Cmp::Gt => op::JGT,
                    Cmp::Ge => op::JGE,
                    Cmp::Set => op::JSET,
                };
                let i = self.code.len();
                self.code.push(Insn::jump(op::JMP | j | op::K, t.k, 0, 0));
                Ok(Exits {
                    t: vec![Exit::Jt(i)],
                    f: vec![Exit::Jf(i)],
                })
            }
            Cond::Not(a) => {
                let e = self.emit(a)?;
                Ok(Exits { t: e.f, f: e.t })
            }
            Cond::And(a, b) => {
                let ea = self.emit(a)?;
                let mut f = self.cross(ea.f, b)?;
                let here = self.code.len();
                self.patch_all(&ea.t, here)?;
                let eb = self.emit(b)?;
                f.extend(eb.f);
                Ok(Exits { t: eb.t, f })
            }
            Cond::Or(a, b) => {
                let ea = self.emit(a)?;
                let mut t = self.cross(ea.t, b)?;
                let here = self.code.len();
                self.patch_all(&ea.f, here)?;
                let eb = self.emit(b)?;
                t.extend(eb.t);
                Ok(Exits { t, f: eb.f })
            }
        }
    }

    /// Prepares open branches that will jump over the code of `over`: if a conditional one
    /// could end up out of reach, all of them are sent to a `ja` placed here instead.
    fn cross(&mut self, exits: Vec<Exit>, over: &Cond) -> Result<Vec<Exit>, BpfError> {
        let here = self.code.len();
        let bound = over.size_bound() + 2;
        let far = exits.iter().any(|e| match e {
            Exit::Jt(i) | Exit::Jf(i) => here - i - 1 + bound > usize::from(u8::MAX),
            Exit::Ja(_) => false,
        });
        if !far {
            return Ok(exits);
        }
        self.code.push(Insn::stmt(op::JMP | op::JA, 0));
        let mut out = vec![Exit::Ja(here)];
        for e in exits {
            match e {
                Exit::Ja(_) => out.push(e),
                _ => self.patch(e, here)?,
            }
        }
        Ok(out)
    }

    fn patch_all(&mut self, exits: &[Exit], target: usize) -> Result<(), BpfError> {
        exits.iter().try_for_each(|&e| self.patch(e, target))
    }

    fn patch(&mut self, e: Exit, target: usize) -> Result<(), BpfError> {
        let (Exit::Jt(i) | Exit::Jf(i) | Exit::Ja(i)) = e;
        let off = target
            .checked_sub(i + 1)
            .ok_or_else(|| BpfError::TooLarge("backward jump".into()))?;
        let short =
            || u8::try_from(off).map_err(|_| BpfError::TooLarge("jump out of reach".into()));
        match (e, self.code.get_mut(i)) {
            (Exit::Jt(_), Some(ins)) => ins.jt = short()?,
            (Exit::Jf(_), Some(ins)) => ins.jf = short()?,
            (Exit::Ja(_), Some(ins)) => {
                ins.k = u32::try_from(off).map_err(|_| BpfError::TooLarge("jump".into()))?
            }
            (_, None) => return Err(BpfError::TooLarge("jump source missing".into())),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::Program;

    fn byte_eq(off: u32, k: u32) -> Cond {
        Cond::eq(Load::Abs { size: op::B, off }, k)
    }

    #[test]
    fn folding() {
        let t = byte_eq(0, 1);
        assert_eq!(Cond::and(Cond::Const(true), t.clone()), t);
        assert_eq!(Cond::and(t.clone(), Cond::Const(false)), Cond::Const(false));
        assert_eq!(Cond::or(Cond::Const(false), t.clone()), t);
        assert_eq!(Cond::or(t.clone(), Cond::Const(true)), Cond::Const(true));
        assert_eq!(Cond::negate(Cond::negate(t.clone())), t);
    }

    #[test]
    fn small_tree_layout() {
        // b0 == 1 and not b1 == 2
        let c = Cond::and(byte_eq(0, 1), Cond::negate(byte_eq(1, 2)));
        let code = generate(&c).unwrap();
        assert_eq!(
            code,
            vec![
                Insn::stmt(op::LD | op::B | op::ABS, 0),
                Insn::jump(op::JMP | op::JEQ, 1, 0, 3),
                Insn::stmt(op::LD | op::B | op::ABS, 1),
                Insn::jump(op::JMP | op::JEQ, 2, 1, 0),
                Insn::stmt(op::RET, MATCH_RET),
                Insn::stmt(op::RET, 0),
            ]
        );
    }

    #[test]
    fn long_chains_use_trampolines_and_stay_correct() {
        // b0 == 0 or b0 == 1 or ... or b0 == 299: far more than 255 instructions, so the
        // early true branches cannot reach the final return directly.
        let mut c = byte_eq(0, 0);
        for k in 1..300 {
            c = Cond::or(c, byte_eq(0, k));
        }
        let code = generate(&c).unwrap();
        assert!(code.iter().any(|i| i.code == op::JMP | op::JA));
        let p = Program::from_insns(code).unwrap();
        assert!(p.matches(&[0], 1));
        assert!(p.matches(&[200], 1));
        assert!(p.matches(&[255], 1));
        // And a conjunction chain: the false branches must reach the end.
        let mut c = byte_eq(0, 7);
        for _ in 1..300 {
            c = Cond::and(c, byte_eq(0, 7));
        }
        let p = Program::from_insns(generate(&c).unwrap()).unwrap();
        assert!(p.matches(&[7], 1));
        assert!(!p.matches(&[8], 1));
    }
}
