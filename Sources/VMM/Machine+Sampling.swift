// Machine+Sampling: where does the guest spend its time between exits? A developer's tool for the lab.
//
// With SWIFTLET_SAMPLE_RIP_MS=N in the environment, the run loop kicks vCPU 0 out of KVM_RUN every N ms
// and records its RIP (every vCPU, when the kvm_pvm profile's ticks are on); at the end the hottest addresses are printed (map them to symbols with
// `nm vmlinux | sort`). Kicks cost one exit each, so keep N at 10 or more.
import CKVM
import Glibc
import GuestMemory

extension Machine {
    func ripSampleInterval() -> Int32? {
        guard let value = getenv("SWIFTLET_SAMPLE_RIP_MS"), let ms = Int32(String(cString: value)), ms > 0 else { return nil }
        ripSamplingOn.store(true, ordering: .releasing)
        return ms
    }

    /// Sampling is on, past SWIFTLET_SAMPLE_RIP_AFTER_S seconds of the run when that is set (to look at
    /// a late stall without the boot's earlier phases in the counts), and before SWIFTLET_SAMPLE_RIP_UNTIL_S
    /// seconds when that is set (to look at one early phase).
    var ripSamplingEnabled: Bool {
        guard ripSamplingOn.load(ordering: .acquiring) else { return false }
        let elapsed = ckvm_monotonic_ns() - started
        if let until = Self.environmentInteger("SWIFTLET_SAMPLE_RIP_UNTIL_S"), elapsed >= UInt64(until) * 1_000_000_000 { return false }
        guard let after = Self.environmentInteger("SWIFTLET_SAMPLE_RIP_AFTER_S") else { return true }
        return elapsed >= UInt64(after) * 1_000_000_000
    }

    public static func environmentInteger(_ name: String) -> Int? {
        guard let value = getenv(name) else { return nil }
        return Int(String(cString: value))
    }

    /// The hottest sampled RIPs, as text; nil when sampling was off.
    public func ripSampleReport(top: Int = Machine.environmentInteger("SWIFTLET_SAMPLE_RIP_TOP") ?? 15) -> String? {
        let perVCPU = ripSamples.withLock { $0 }
        guard !perVCPU.isEmpty else { return nil }
        var lines: [String] = []
        for (vcpu, samples) in perVCPU.sorted(by: { $0.key < $1.key }) {
            let total = samples.values.reduce(0, +)
            lines.append("RIP samples of vCPU \(vcpu) (\(total) samples):")
            for (rip, count) in samples.sorted(by: { $0.value > $1.value }).prefix(top) {
                lines.append("  0x\(hex(rip, width: 16))  \(count)")
            }
        }
        return lines.joined(separator: "\n")
    }
}
