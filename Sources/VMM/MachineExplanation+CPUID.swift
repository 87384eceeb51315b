// MachineExplanation+CPUID: the CPUID table vCPU 0 was given (KVM_SET_CPUID2, built by CPUIDPolicy from
// KVM_GET_SUPPORTED_CPUID) beside the host's own CPUID (ckvm_host_cpuid), for the leaves a learner meets
// first: vendor (0), family and features (1), structured extended features (7), the hypervisor leaves
// (0x40000000: signature, 0x40000001: KVM's paravirtual features), extended features (0x80000001) and
// the brand string. Feature names are the ones /proc/cpuinfo and Linux's `clearcpuid=` use.
// Reference: Intel SDM Vol. 2A "CPUID"; AMD APM Vol. 3 "CPUID"; Linux Documentation/virt/kvm/x86/cpuid.rst.
import CKVM
import GuestMemory
import KVM

/// The CPUID instruction run on the host by this process.
public enum HostCPUID {
    public static func query(_ leaf: UInt32, _ subleaf: UInt32 = 0) -> CPUIDEntry {
        var out: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
        // SAFETY: a homogeneous tuple of four UInt32 is laid out as a contiguous UInt32[4], which is what
        // ckvm_host_cpuid writes; the pointer does not outlive the closure.
        withUnsafeMutableBytes(of: &out) { raw in
            ckvm_host_cpuid(leaf, subleaf, raw.baseAddress!.assumingMemoryBound(to: UInt32.self))
        }
        return CPUIDEntry(function: leaf, index: subleaf, eax: out.0, ebx: out.1, ecx: out.2, edx: out.3)
    }
}

extension MachineExplanation {
    public struct CPUIDComparison: Sendable {
        public struct Row: Sendable {
            public var leaf: UInt32
            public var subleaf: UInt32
            public var title: String
            /// Nil when the vCPU's table has no such leaf (the guest then reads zeros, or the last basic leaf).
            public var given: CPUIDEntry?
            /// Nil when the host has no such leaf.
            public var host: CPUIDEntry?
            /// Decoded values and differences, one line each.
            public var notes: [String]
        }

        public var rows: [Row]
        /// Which column the guest's CPUID instruction really returns on this backend, as measured.
        public var guestSees: String

        public func row(_ leaf: UInt32, _ subleaf: UInt32 = 0) -> Row? { rows.first { $0.leaf == leaf && $0.subleaf == subleaf } }

        public init(given table: [CPUIDEntry], backend: Backend, host: (UInt32, UInt32) -> CPUIDEntry = HostCPUID.query) {
            func given(_ leaf: UInt32, _ subleaf: UInt32 = 0) -> CPUIDEntry? {
                table.first { $0.function == leaf && ($0.flags & 1 == 0 || $0.index == subleaf) }
            }
            let hostMaxBasic = host(0, 0).eax
            let hostMaxExtended = host(0x8000_0000, 0).eax
            let hostHasHypervisor = hostMaxBasic >= 1 && host(1, 0).ecx & (1 << 31) != 0
            func hostLeaf(_ leaf: UInt32, _ subleaf: UInt32 = 0) -> CPUIDEntry? {
                let available = leaf >= 0x8000_0000 ? leaf <= hostMaxExtended
                    : leaf >= 0x4000_0000 ? hostHasHypervisor && leaf <= max(host(0x4000_0000, 0).eax, 0x4000_0000)
                    : leaf <= hostMaxBasic
                return available ? host(leaf, subleaf) : nil
            }

            var rows: [Row] = []
            func add(_ leaf: UInt32, _ subleaf: UInt32, _ title: String, _ decode: (CPUIDEntry?, CPUIDEntry?) -> [String]) {
                let g = given(leaf, subleaf), h = hostLeaf(leaf, subleaf)
                rows.append(Row(leaf: leaf, subleaf: subleaf, title: title, given: g, host: h, notes: decode(g, h)))
            }

            add(0, 0, "vendor and highest basic leaf") { g, h in
                ["vCPU: \(g.map { "\"\(Self.vendor($0))\", leaves up to 0x\(hex($0.eax))" } ?? "none")",
                 "host: \(h.map { "\"\(Self.vendor($0))\", leaves up to 0x\(hex($0.eax))" } ?? "none")"]
            }
            add(1, 0, "family/model, APIC id, features") { g, h in
                var notes: [String] = []
                if let g { notes.append("vCPU: \(Self.signature(g)); APIC id \(g.ebx >> 24), \((g.ebx >> 16) & 0xFF) logical CPUs") }
                if let h { notes.append("host: \(Self.signature(h)); APIC id \(h.ebx >> 24), \((h.ebx >> 16) & 0xFF) logical CPUs") }
                notes += Self.differences(g?.ecx, h?.ecx, Self.leaf1ECX, "ECX")
                notes += Self.differences(g?.edx, h?.edx, Self.leaf1EDX, "EDX")
                return notes
            }
            add(7, 0, "structured extended features") { g, h in
                Self.differences(g?.ebx, h?.ebx, Self.leaf7EBX, "EBX") + Self.differences(g?.ecx, h?.ecx, Self.leaf7ECX, "ECX")
                    + Self.differences(g?.edx, h?.edx, Self.leaf7EDX, "EDX")
            }
            add(0x4000_0000, 0, "hypervisor signature") { g, h in
                ["vCPU: \(g.map { "\"\(Self.hypervisorSignature($0))\", leaves up to 0x\(hex($0.eax))" } ?? "none")",
                 "host: \(h.map { "\"\(Self.hypervisorSignature($0))\" (the hypervisor this host itself runs under)" } ?? "no hypervisor leaves (CPUID.1:ECX[31] clear)")"]
            }
            add(0x4000_0001, 0, "KVM paravirtual features") { g, h in
                Self.differences(g?.eax, h?.eax, Self.kvmFeatures, "EAX")
            }
            add(0x8000_0001, 0, "extended features") { g, h in
                Self.differences(g?.ecx, h?.ecx, Self.extendedECX, "ECX") + Self.differences(g?.edx, h?.edx, Self.extendedEDX, "EDX")
            }
            let brandLeaves: [UInt32] = [0x8000_0002, 0x8000_0003, 0x8000_0004]
            let givenBrand = brandLeaves.compactMap { given($0) }
            let hostBrand = brandLeaves.compactMap { hostLeaf($0) }
            rows.append(Row(leaf: 0x8000_0002, subleaf: 0, title: "brand string (leaves 0x80000002-4)", given: givenBrand.first, host: hostBrand.first,
                            notes: ["vCPU: \(givenBrand.count == 3 ? Self.quotedOrEmpty(Self.brand(givenBrand)) : "none")",
                                    "host: \(hostBrand.count == 3 ? Self.quotedOrEmpty(Self.brand(hostBrand)) : "none")"]))
            self.rows = rows

            switch backend {
            case .pvm:
                guestSees = "On this backend (kvm_pvm) CPUID is only partly virtualised. Measured on this project's machines with tiny guests running CPUID: leaf 1 ECX and leaf 7 come from the host (less a few bits kvm_pvm clears itself: pcid, invpcid, pku), so POPCNT, XSAVE, AVX, SMEP and SMAP are visible although this table lacks them; leaf 1 EBX, leaf 0x80000001 and the brand string come from this table (docs/07-backends.md). Features cannot be hidden through CPUID here, which is why the VMM adds the backend profile's clearcpuid= to a Linux command line."
            case .intel, .amd:
                guestSees = "On hardware KVM the guest's CPUID instruction exits to KVM, which answers from the vCPU table: the guest sees the vCPU column."
            case .unknown:
                guestSees = "Unknown KVM backend: on hardware KVM the guest sees the vCPU column; on kvm_pvm leaves 1 (ECX) and 7 show the host's features."
            }
        }

        // MARK: Decoding

        static func chars(_ value: UInt32) -> String {
            String(decoding: (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }.filter { $0 >= 0x20 && $0 < 0x7F }, as: UTF8.self)
        }

        static func quotedOrEmpty(_ s: String) -> String { s.isEmpty ? "empty (all zero)" : "\"\(s)\"" }

        static func vendor(_ e: CPUIDEntry) -> String { chars(e.ebx) + chars(e.edx) + chars(e.ecx) }
        static func hypervisorSignature(_ e: CPUIDEntry) -> String { chars(e.ebx) + chars(e.ecx) + chars(e.edx) }
        static func brand(_ entries: [CPUIDEntry]) -> String {
            var s = ""
            for e in entries { s += chars(e.eax) + chars(e.ebx) + chars(e.ecx) + chars(e.edx) }
            while s.hasPrefix(" ") { s.removeFirst() }
            while s.hasSuffix(" ") { s.removeLast() }
            return s
        }

        /// "family 0x19 model 0x11 stepping 1" with the extended fields folded in (SDM: display family/model).
        static func signature(_ e: CPUIDEntry) -> String {
            let stepping = e.eax & 0xF, baseModel = (e.eax >> 4) & 0xF, baseFamily = (e.eax >> 8) & 0xF
            let family = baseFamily == 0xF ? baseFamily + ((e.eax >> 20) & 0xFF) : baseFamily
            let model = baseFamily == 0xF || baseFamily == 0x6 ? baseModel | ((e.eax >> 16) & 0xF) << 4 : baseModel
            return "family 0x\(hex(family)) model 0x\(hex(model)) stepping \(stepping)"
        }

        /// Feature bits present on one side only, named.
        static func differences(_ given: UInt32?, _ host: UInt32?, _ names: [Int: String], _ register: String) -> [String] {
            let g = given ?? 0, h = host ?? 0
            func named(_ bits: UInt32) -> String {
                (0..<32).filter { bits & (1 << UInt32($0)) != 0 }.map { names[$0] ?? "bit\($0)" }.joined(separator: " ")
            }
            var notes: [String] = []
            if h & ~g != 0 { notes.append("\(register): host only: \(named(h & ~g))") }
            if g & ~h != 0 { notes.append("\(register): vCPU only: \(named(g & ~h))") }
            if g == h && g != 0 { notes.append("\(register): identical") }
            return notes
        }

        static let leaf1ECX: [Int: String] = [
            0: "pni", 1: "pclmulqdq", 2: "dtes64", 3: "monitor", 4: "ds_cpl", 5: "vmx", 6: "smx", 7: "est", 8: "tm2", 9: "ssse3",
            10: "cid", 11: "sdbg", 12: "fma", 13: "cx16", 14: "xtpr", 15: "pdcm", 17: "pcid", 18: "dca", 19: "sse4_1", 20: "sse4_2",
            21: "x2apic", 22: "movbe", 23: "popcnt", 24: "tsc_deadline_timer", 25: "aes", 26: "xsave", 27: "osxsave", 28: "avx",
            29: "f16c", 30: "rdrand", 31: "hypervisor",
        ]
        static let leaf1EDX: [Int: String] = [
            0: "fpu", 1: "vme", 2: "de", 3: "pse", 4: "tsc", 5: "msr", 6: "pae", 7: "mce", 8: "cx8", 9: "apic", 11: "sep", 12: "mtrr",
            13: "pge", 14: "mca", 15: "cmov", 16: "pat", 17: "pse36", 18: "pn", 19: "clflush", 21: "dts", 22: "acpi", 23: "mmx",
            24: "fxsr", 25: "sse", 26: "sse2", 27: "ss", 28: "ht", 29: "tm", 30: "ia64", 31: "pbe",
        ]
        static let leaf7EBX: [Int: String] = [
            0: "fsgsbase", 1: "tsc_adjust", 2: "sgx", 3: "bmi1", 4: "hle", 5: "avx2", 7: "smep", 8: "bmi2", 9: "erms", 10: "invpcid",
            11: "rtm", 12: "cqm", 14: "mpx", 15: "rdt_a", 16: "avx512f", 17: "avx512dq", 18: "rdseed", 19: "adx", 20: "smap",
            21: "avx512ifma", 23: "clflushopt", 24: "clwb", 25: "intel_pt", 26: "avx512pf", 27: "avx512er", 28: "avx512cd",
            29: "sha_ni", 30: "avx512bw", 31: "avx512vl",
        ]
        static let leaf7ECX: [Int: String] = [
            1: "avx512vbmi", 2: "umip", 3: "pku", 4: "ospke", 5: "waitpkg", 6: "avx512_vbmi2", 7: "shstk", 8: "gfni", 9: "vaes", 10: "vpclmulqdq",
            11: "avx512_vnni", 12: "avx512_bitalg", 14: "avx512_vpopcntdq", 16: "la57", 22: "rdpid", 25: "cldemote",
            27: "movdiri", 28: "movdir64b",
        ]
        static let leaf7EDX: [Int: String] = [4: "fsrm", 10: "md_clear", 14: "serialize", 29: "arch_capabilities"]
        static let extendedECX: [Int: String] = [
            0: "lahf_lm", 1: "cmp_legacy", 2: "svm", 3: "extapic", 4: "cr8_legacy", 5: "abm", 6: "sse4a", 7: "misalignsse",
            8: "3dnowprefetch", 9: "osvw", 10: "ibs", 11: "xop", 12: "skinit", 13: "wdt", 16: "fma4", 22: "topoext",
        ]
        static let extendedEDX: [Int: String] = [11: "syscall", 20: "nx", 22: "mmxext", 25: "fxsr_opt", 26: "pdpe1gb", 27: "rdtscp", 29: "lm"]
        /// Documentation/virt/kvm/x86/cpuid.rst, KVM_CPUID_FEATURES.
        static let kvmFeatures: [Int: String] = [
            0: "kvmclock", 1: "nop_io_delay", 2: "mmu_op", 3: "kvmclock2", 4: "async_pf", 5: "steal_time", 6: "pv_eoi",
            7: "pv_unhalt", 9: "pv_tlb_flush", 10: "async_pf_vmexit", 11: "pv_send_ipi", 12: "poll_control", 13: "pv_sched_yield",
            14: "async_pf_int", 15: "msi_ext_dest_id", 16: "hc_map_gpa_range", 17: "migration_control", 24: "clocksource_stable",
        ]
    }
}
