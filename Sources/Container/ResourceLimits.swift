// ResourceLimits: the memory, pids and cpu limits a container gets through its cgroup, and the
// parsing of the CLI spellings ("64M", "32", "0.5") into them. Sizes use binary units like docker.

public struct ResourceLimits: Equatable, Sendable {
    /// memory.max (v2) / memory.limit_in_bytes (v1), bytes.
    public var memoryBytes: UInt64?
    /// pids.max.
    public var pids: Int64?
    /// CFS quota and period in microseconds: cpu.max "quota period" (v2), cpu.cfs_quota_us/cfs_period_us (v1).
    public var cpuQuotaMicroseconds: Int64?
    public var cpuPeriodMicroseconds: UInt64?

    public init(memoryBytes: UInt64? = nil, pids: Int64? = nil, cpuQuotaMicroseconds: Int64? = nil, cpuPeriodMicroseconds: UInt64? = nil) {
        self.memoryBytes = memoryBytes
        self.pids = pids
        self.cpuQuotaMicroseconds = cpuQuotaMicroseconds
        self.cpuPeriodMicroseconds = cpuPeriodMicroseconds
    }

    public var isEmpty: Bool { memoryBytes == nil && pids == nil && cpuQuotaMicroseconds == nil }

    /// The smallest memory limit accepted: below this even a shell cannot start.
    public static let minimumMemoryBytes: UInt64 = 1 << 20
    public static let defaultCPUPeriod: UInt64 = 100_000

    /// Parses "64M", "64m", "64MiB", "1g", "512k", "1048576" (bytes).
    public static func parseMemory(_ text: String) throws(ContainerError) -> UInt64 {
        let hint = "use a number with an optional K, M or G suffix, e.g. 64M"
        var digits = Substring(text)
        var multiplier: UInt64 = 1
        let lower = text.lowercased()
        for (suffixes, value) in [(["kib", "kb", "k"], UInt64(1) << 10), (["mib", "mb", "m"], 1 << 20),
                                  (["gib", "gb", "g"], 1 << 30), (["tib", "tb", "t"], 1 << 40), (["b"], 1)] {
            if let suffix = suffixes.first(where: { lower.hasSuffix($0) }) {
                digits = digits.dropLast(suffix.count)
                multiplier = value
                break
            }
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
              let number = Double(digits), number.isFinite, number > 0 else {
            throw .invalid("--memory: invalid size \"\(text)\"", hint: hint)
        }
        let bytes = number * Double(multiplier)
        guard bytes < Double(UInt64.max / 2) else { throw .invalid("--memory: size \"\(text)\" is too large") }
        let value = UInt64(bytes)
        guard value >= minimumMemoryBytes else {
            throw .invalid("--memory: \(text) is below the minimum of 1M")
        }
        return value
    }

    /// Parses a positive process count.
    public static func parsePids(_ text: String) throws(ContainerError) -> Int64 {
        guard let value = Int64(text), value > 0 else {
            throw .invalid("--pids: invalid process count \"\(text)\"", hint: "use a whole number of at least 1")
        }
        return value
    }

    /// Parses a CPU count ("0.5", "2") into a CFS quota over the default 100 ms period.
    public static func parseCPUs(_ text: String) throws(ContainerError) -> Int64 {
        guard text.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }), let cpus = Double(text), cpus.isFinite, cpus > 0 else {
            throw .invalid("--cpus: invalid CPU count \"\(text)\"", hint: "use a positive decimal such as 0.5")
        }
        // The upper bound first: 1e24 CPUs would make a quota no Int64 holds (a trap, issue 14).
        guard cpus <= 4096 else { throw .invalid("--cpus: \(text) is too large") }
        let quota = Int64((cpus * Double(defaultCPUPeriod)).rounded())
        guard quota >= 1000 else { throw .invalid("--cpus: \(text) is below the kernel's minimum of 0.01") }
        return quota
    }

    /// "32 MiB", "1.5 GiB", "512 KiB", "100 bytes".
    public static func describe(bytes: UInt64) -> String {
        let units: [(UInt64, String)] = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
        for (size, name) in units where bytes >= size {
            let value = Double(bytes) / Double(size)
            if value == value.rounded() { return "\(UInt64(value)) \(name)" }
            return "\((value * 10).rounded() / 10) \(name)"
        }
        return "\(bytes) bytes"
    }
}
