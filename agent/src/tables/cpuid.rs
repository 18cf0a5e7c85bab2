//! `cpuid`: what the CPUID instruction says, as osquery lists it: the vendor
//! and brand strings, the hypervisor signature, the "serial" words, the base
//! family, one row per feature bit osquery knows (leaves 1, 7 and
//! 0x80000001, `input_eax` in decimal as osquery prints it) and the raw SGX
//! leaf 0x12. osquery builds this table on x86_64 only; elsewhere it has no
//! rows here.
//!
//! Rows, names, registers and bit positions follow osquery exactly, its
//! oddities included (`mmz` is MMX; the hypervisor row hex-prints eax, ebx
//! and ecx but says `ebx,ecx,edx`; the serial row says `eax,eax,ecx` for
//! eax of leaf 1 and eax, edx of leaf 3). One difference: osquery keeps the
//! NUL padding of the 48-byte brand string in `product_name`'s value; it is
//! cut here.

use super::{Row, ScanContext, Table, TableSchema};
use crate::error::AgentError;
use sweep_proto::schema::cpuid::TABLE as SCHEMA;

pub struct Cpuid;

/// The four registers one CPUID call returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Regs {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

impl Regs {
    fn get(&self, register: &str) -> u32 {
        match register {
            "eax" => self.eax,
            "ebx" => self.ebx,
            "ecx" => self.ecx,
            _ => self.edx,
        }
    }
}

/// A feature bit: name, output register, bit.
type Feature = (&'static str, &'static str, u32);

/// The feature bits osquery reports, per input leaf.
const FEATURES: &[(u32, &[Feature])] = &[
    (
        1,
        &[
            ("pae", "edx", 6),
            ("msr", "edx", 5),
            ("sep", "edx", 11),
            ("mtrr", "edx", 12),
            ("pge", "edx", 13),
            ("mca", "edx", 14),
            ("pat", "edx", 16),
            ("clfsh", "edx", 19),
            ("acpi", "edx", 22),
            ("mmz", "edx", 23),
            ("sse", "edx", 25),
            ("sse2", "edx", 26),
            ("ss", "edx", 27),
            ("htt", "edx", 28),
            ("ia64", "edx", 30),
            ("sse3", "ecx", 0),
            ("vmx", "ecx", 5),
            ("smx", "ecx", 6),
            ("ssse3", "ecx", 9),
            ("sdbg", "ecx", 11),
            ("pdcm", "ecx", 15),
            ("pcid", "ecx", 17),
            ("dca", "ecx", 18),
            ("sse4.1", "ecx", 19),
            ("sse4.2", "ecx", 20),
            ("aes", "ecx", 25),
            ("avx", "ecx", 28),
            ("hypervisor", "ecx", 31),
        ],
    ),
    (
        7,
        &[
            ("sgx", "ebx", 2),
            ("hle", "ebx", 4),
            ("avx2", "ebx", 5),
            ("smep", "ebx", 7),
            ("bmi2", "ebx", 8),
            ("erms", "ebx", 9),
            ("invpcid", "ebx", 10),
            ("rtm", "ebx", 11),
            ("pqm", "ebx", 12),
            ("mpx", "ebx", 14),
            ("pqe", "ebx", 15),
            ("avx512f", "ebx", 16),
            ("avx512dq", "ebx", 17),
            ("rdseed", "ebx", 18),
            ("adx", "ebx", 19),
            ("smap", "ebx", 20),
            ("intel_pt", "ebx", 25),
            ("sha", "ebx", 29),
            ("umip", "ecx", 2),
            ("pku", "ecx", 3),
            ("ospke", "ecx", 4),
            ("gfni", "ecx", 8),
            ("vaes", "ecx", 9),
            ("sgx_lc", "ecx", 30),
            ("spec_ctrl", "edx", 26),
        ],
    ),
    (
        0x8000_0001,
        &[
            ("lahfsahf", "ecx", 0),
            ("svm", "ecx", 2),
            ("3dnowprefetch", "ecx", 8),
            ("ibs", "ecx", 10),
            ("skinit", "ecx", 12),
            ("lwp", "ecx", 15),
            ("nx", "edx", 20),
            ("page1gb", "edx", 26),
            ("lm", "edx", 29),
        ],
    ),
];

#[cfg(target_arch = "x86_64")]
fn native(leaf: u32, subleaf: u32) -> Regs {
    let r = raw_cpuid::native_cpuid::cpuid_count(leaf, subleaf);
    Regs {
        eax: r.eax,
        ebx: r.ebx,
        ecx: r.ecx,
        edx: r.edx,
    }
}

impl Table for Cpuid {
    fn schema(&self) -> &'static TableSchema {
        &SCHEMA
    }

    #[cfg(target_arch = "x86_64")]
    fn generate(&self, ctx: &ScanContext<'_>, out: &mut Vec<Row>) -> Result<(), AgentError> {
        out.extend(rows(ctx, &native));
        Ok(())
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn generate(&self, _ctx: &ScanContext<'_>, _out: &mut Vec<Row>) -> Result<(), AgentError> {
        Ok(())
    }
}

/// Register bytes in memory order, as the CPU spells its strings.
fn chars(regs: &[u32]) -> String {
    let bytes: Vec<u8> = regs.iter().flat_map(|r| r.to_le_bytes()).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// osquery's rows, from a CPUID function (`leaf, subleaf → registers`).
pub(crate) fn rows(ctx: &ScanContext<'_>, cpuid: &dyn Fn(u32, u32) -> Regs) -> Vec<Row> {
    let mut out = Vec::new();
    let mut push = |feature: &str, value: String, register: &str, bit: u32, eax: &str| {
        let mut row = ctx.row();
        row.set("feature", feature)
            .set("value", value)
            .set("output_register", register)
            .set("output_bit", bit)
            .set("input_eax", eax);
        out.push(row);
    };
    let leaf0 = cpuid(0, 0);
    // A signed comparison in osquery: no basic leaves past 0, no CPUID.
    if (leaf0.eax as i32) < 1 {
        return out;
    }
    push(
        "vendor",
        chars(&[leaf0.ebx, leaf0.edx, leaf0.ecx]),
        "ebx,edx,ecx",
        0,
        "0",
    );

    let brand: Vec<u32> = (0..3)
        .flat_map(|i| {
            let r = cpuid(0x8000_0002 + i, 0);
            [r.eax, r.ebx, r.ecx, r.edx]
        })
        .collect();
    let brand = chars(&brand).trim_end_matches('\0').to_string();
    push("product_name", brand, "eax,ebx,ecx,edx", 0, "0x80000002");

    let hv = cpuid(0x4000_0000, 0);
    // osquery tests `eax && 0xFF000000 != 0`, i.e. any non-zero eax.
    if hv.eax != 0 {
        let value = format!("{:08x}{:08x}{:08x}", hv.eax, hv.ebx, hv.ecx);
        push("hypervisor_id", value, "ebx,ecx,edx", 0, "0x40000000");
    }

    let (one, three) = (cpuid(1, 0), cpuid(3, 0));
    let serial = format!("{:08x}{:08x}{:08x}", one.eax, three.eax, three.edx);
    push("serial", serial, "eax,eax,ecx", 0, "1,3");

    push("family", format!("{:04x}", one.eax & 0xf00), "eax", 0, "1");

    for (leaf, features) in FEATURES {
        let regs = cpuid(*leaf, 0);
        for (name, register, bit) in *features {
            let set = regs.get(register) & (1 << bit) != 0;
            push(
                name,
                if set { "1" } else { "0" }.into(),
                register,
                *bit,
                &leaf.to_string(),
            );
        }
    }

    for (subleaf, eax) in [(0, "18"), (1, "18,1")] {
        let r = cpuid(0x12, subleaf);
        let value = format!("{:08x}{:08x}{:08x}{:08x}", r.eax, r.ebx, r.ecx, r.edx);
        push(&format!("sgx{subleaf}"), value, "eax,ebx,ecx,edx", 0, eax);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::testing::{int, scan, text};
    use crate::tables::{Budget, TableEnv};

    fn value<'a>(rows: &'a [Row], feature: &str) -> Option<&'a Row> {
        rows.iter().find(|r| text(r, "feature") == feature)
    }

    /// The kernel's own reading of CPUID, in /proc/cpuinfo, for the feature
    /// bits it reports as they are (the kernel may clear others: `vmx` when
    /// the firmware locks it off, `smep`/`smap`/`pcid` by boot options).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn matches_proc_cpuinfo() {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        let field = |name: &str| {
            cpuinfo
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    (k.trim() == name).then(|| v.trim().to_string())
                })
                .unwrap_or_else(|| panic!("/proc/cpuinfo has no {name}"))
        };
        let flags: Vec<String> = field("flags")
            .split_whitespace()
            .map(String::from)
            .collect();
        let rows = scan(&Cpuid, &TableEnv::default());

        assert_eq!(
            text(value(&rows, "vendor").unwrap(), "value"),
            field("vendor_id")
        );
        assert_eq!(
            text(value(&rows, "product_name").unwrap(), "value").trim(),
            field("model name")
        );
        // cpuinfo's family adds the extended family to a base of 15.
        let family: u32 = field("cpu family").parse().unwrap();
        let base = family.min(15);
        assert_eq!(
            text(value(&rows, "family").unwrap(), "value"),
            format!("{:04x}", base << 8)
        );

        let same = [
            ("pae", "pae"),
            ("msr", "msr"),
            ("sep", "sep"),
            ("mtrr", "mtrr"),
            ("pge", "pge"),
            ("mca", "mca"),
            ("pat", "pat"),
            ("clfsh", "clflush"),
            ("mmz", "mmx"),
            ("sse", "sse"),
            ("sse2", "sse2"),
            ("htt", "ht"),
            ("sse3", "pni"),
            ("ssse3", "ssse3"),
            ("sse4.1", "sse4_1"),
            ("sse4.2", "sse4_2"),
            ("aes", "aes"),
            ("avx", "avx"),
            ("hypervisor", "hypervisor"),
            ("avx2", "avx2"),
            ("bmi2", "bmi2"),
            ("erms", "erms"),
            ("avx512f", "avx512f"),
            ("avx512dq", "avx512dq"),
            ("rdseed", "rdseed"),
            ("adx", "adx"),
            ("sha", "sha_ni"),
            ("lahfsahf", "lahf_lm"),
            ("3dnowprefetch", "3dnowprefetch"),
            ("nx", "nx"),
            ("page1gb", "pdpe1gb"),
            ("lm", "lm"),
        ];
        for (feature, flag) in same {
            let row = value(&rows, feature).unwrap();
            let expected = if flags.iter().any(|f| f == flag) {
                "1"
            } else {
                "0"
            };
            assert_eq!(text(row, "value"), expected, "{feature} (cpuinfo {flag})");
        }
        assert_eq!(
            value(&rows, "hypervisor_id").is_some(),
            flags.iter().any(|f| f == "hypervisor")
        );
    }

    /// Fixed register values give osquery's exact rows.
    #[test]
    fn lays_out_rows_like_osquery() {
        let budget = Budget::unlimited();
        let env = TableEnv::default();
        let ctx = ScanContext::all("cpuid", SCHEMA.columns, &budget, &env);
        let le = |s: &[u8; 4]| u32::from_le_bytes(*s);
        let fake = |leaf: u32, sub: u32| -> Regs {
            match (leaf, sub) {
                (0, _) => Regs {
                    eax: 0x16,
                    ebx: le(b"Genu"),
                    edx: le(b"ineI"),
                    ecx: le(b"ntel"),
                },
                (1, _) => Regs {
                    eax: 0x000906ea,
                    ebx: 0,
                    ecx: 1 << 31 | 1 << 20,
                    edx: 1 << 23 | 1 << 6,
                },
                (3, _) => Regs {
                    eax: 0x1234,
                    ebx: 0,
                    ecx: 0,
                    edx: 0xabcd,
                },
                (7, _) => Regs {
                    ebx: 1 << 5,
                    ecx: 1 << 30,
                    edx: 1 << 26,
                    eax: 0,
                },
                (0x12, 1) => Regs {
                    eax: 1,
                    ebx: 2,
                    ecx: 3,
                    edx: 4,
                },
                (0x4000_0000, _) => Regs {
                    eax: 0x4000_0001,
                    ebx: le(b"KVMK"),
                    ecx: le(b"VMKV"),
                    edx: le(b"M\0\0\0"),
                },
                (0x8000_0001, _) => Regs {
                    ecx: 1,
                    edx: 1 << 29,
                    ..Regs::default()
                },
                (0x8000_0002, _) => Regs {
                    eax: le(b"Inte"),
                    ebx: le(b"l(R)"),
                    ecx: le(b" Cor"),
                    edx: le(b"e(TM"),
                },
                (0x8000_0003, _) => Regs {
                    eax: le(b") i7"),
                    ebx: le(b"-870"),
                    ecx: le(b"0K\0\0"),
                    edx: 0,
                },
                _ => Regs::default(),
            }
        };
        let rows = rows(&ctx, &fake);
        assert_eq!(rows.len(), 5 + 28 + 25 + 9 + 2);
        let r = |f: &str| {
            let row = value(&rows, f).unwrap();
            (
                text(row, "value"),
                text(row, "output_register"),
                int(row, "output_bit"),
                text(row, "input_eax"),
            )
        };
        let e = |v: &str, reg: &str, bit: i64, eax: &str| {
            (v.to_string(), reg.to_string(), bit, eax.to_string())
        };
        assert_eq!(r("vendor"), e("GenuineIntel", "ebx,edx,ecx", 0, "0"));
        assert_eq!(
            r("product_name"),
            e(
                "Intel(R) Core(TM) i7-8700K",
                "eax,ebx,ecx,edx",
                0,
                "0x80000002"
            )
        );
        assert_eq!(
            r("hypervisor_id"),
            e("400000014b4d564b564b4d56", "ebx,ecx,edx", 0, "0x40000000")
        );
        assert_eq!(
            r("serial"),
            e("000906ea000012340000abcd", "eax,eax,ecx", 0, "1,3")
        );
        assert_eq!(r("family"), e("0600", "eax", 0, "1"));
        assert_eq!(r("pae"), e("1", "edx", 6, "1"));
        assert_eq!(r("mmz"), e("1", "edx", 23, "1"));
        assert_eq!(r("sse4.2"), e("1", "ecx", 20, "1"));
        assert_eq!(r("hypervisor"), e("1", "ecx", 31, "1"));
        assert_eq!(r("sse3"), e("0", "ecx", 0, "1"));
        assert_eq!(r("avx2"), e("1", "ebx", 5, "7"));
        assert_eq!(r("sgx_lc"), e("1", "ecx", 30, "7"));
        assert_eq!(r("spec_ctrl"), e("1", "edx", 26, "7"));
        assert_eq!(r("lahfsahf"), e("1", "ecx", 0, "2147483649"));
        assert_eq!(r("lm"), e("1", "edx", 29, "2147483649"));
        assert_eq!(r("nx"), e("0", "edx", 20, "2147483649"));
        assert_eq!(
            r("sgx0"),
            e(
                "00000000000000000000000000000000",
                "eax,ebx,ecx,edx",
                0,
                "18"
            )
        );
        assert_eq!(
            r("sgx1"),
            e(
                "00000001000000020000000300000004",
                "eax,ebx,ecx,edx",
                0,
                "18,1"
            )
        );
        // osquery's order: strings, family, then leaf by leaf.
        let order: Vec<String> = rows.iter().take(6).map(|r| text(r, "feature")).collect();
        assert_eq!(
            order,
            [
                "vendor",
                "product_name",
                "hypervisor_id",
                "serial",
                "family",
                "pae"
            ]
        );
    }

    #[test]
    fn pack_query_runs() {
        let rows = super::super::sysfs::run_pack_query("hardware-monitoring", "cpuid");
        // 4 strings (5 with a hypervisor), 62 feature bits, 2 SGX leaves.
        let rows = rows.len();
        if cfg!(target_arch = "x86_64") {
            assert!(rows == 68 || rows == 69, "{rows}");
        } else {
            assert_eq!(rows, 0);
        }
    }
}
