// Parsers: the three texts compare reads back after a run.
//
// - ReportFile: a run report (JSON, laid out by JSON/RunReportFormat.swift), written by `swiftlet boot
//   --report` (Sources/VMM/RunReport.swift) and `swiftlet container run --report`
//   (Sources/Container/ContainerReport.swift), read back as the writers' (key, value) entries.
// - ProbeAnswers: "swiftlet-probe: KEY VALUE" lines, printed alike by the probe tiny guest (guest/tiny/probe.c),
//   the probe helper (guest/probe/helper.c) and the probe script (ProbeScript.swift), wherever they ran.
// - KernelLog: what a Linux guest says about itself on its serial console: its banner ("Linux version ..."),
//   the memory map it was given ("BIOS-e820: [mem ...] usable"), its memory total, the hypervisor it detected,
//   and a panic.

import JSON

public struct ReportFile: Sendable, Equatable {
    public var version: Int
    /// Every (key, value) pair in file order.
    public var entries: [(key: String, value: String)]

    public static func == (a: ReportFile, b: ReportFile) -> Bool {
        a.version == b.version && a.entries.map(\.key) == b.entries.map(\.key) && a.entries.map(\.value) == b.entries.map(\.value)
    }

    /// Nil when `text` is not a run report (wrong or missing header).
    public init?(_ text: String) {
        guard let document = try? JSONParser.parse(text), let report = RunReportFormat.entries(document) else { return nil }
        version = report.version
        entries = report.entries
    }

    public func first(_ key: String) -> String? { entries.first { $0.key == key }?.value }
    public func all(_ key: String) -> [String] { entries.filter { $0.key == key }.map(\.value) }
    /// A multi-line value: every line of `key`, joined.
    public func text(_ key: String) -> String? {
        let lines = all(key)
        return lines.isEmpty ? nil : lines.joined(separator: "\n")
    }
    public func integer(_ key: String) -> Int? { first(key).flatMap { Int($0) } }
    public func unsigned(_ key: String) -> UInt64? { first(key).flatMap { UInt64($0) } }
}

public struct ProbeAnswers: Sendable, Equatable {
    public static let prefix = "swiftlet-probe: "
    /// The answers in the order they were printed; a key printed twice keeps its last value.
    public private(set) var values: [String: String] = [:]
    public private(set) var keys: [String] = []

    public init(_ text: String) {
        for raw in textLines(text) {
            let line = raw.filter { $0 != "\r" }
            guard let range = line.firstRange(of: Self.prefix) else { continue }
            let rest = line[range.upperBound...]
            let key: String, value: String
            if let space = rest.firstIndex(of: " ") {
                key = String(rest[..<space]); value = String(rest[rest.index(after: space)...])
            } else {
                key = String(rest); value = ""
            }
            if values[key] == nil { keys.append(key) }
            values[key] = value
        }
    }

    public subscript(_ key: String) -> String? { values[key] }
    public var isEmpty: Bool { values.isEmpty }
    /// True when the prober reached its end ("done ok").
    public var finished: Bool { values["done"] == "ok" }
}

public struct KernelLog: Sendable, Equatable {
    public struct MemoryRange: Sendable, Equatable {
        public var start: UInt64
        /// Inclusive, as the kernel prints it.
        public var end: UInt64
        public var type: String

        public init(start: UInt64, end: UInt64, type: String) {
            self.start = start
            self.end = end
            self.type = type
        }
    }

    /// "Linux version 6.1.0 (...) #1 ..." without the timestamp, if the kernel printed it.
    public var banner: String?
    /// The release, the banner's third word: what `uname -r` says.
    public var release: String?
    public var memoryMap: [MemoryRange] = []
    /// "Memory: 52000K/65144K available (...)", the kernel's own count.
    public var memoryLine: String?
    /// The total from memoryLine, in KiB (the number after the slash).
    public var memoryTotalKiB: Int?
    /// "Hypervisor detected: KVM", if printed.
    public var hypervisor: String?
    /// "smpboot: Total of N processors activated", if printed.
    public var processors: Int?
    public var panic: String?

    public init(_ text: String) {
        for raw in textLines(text) {
            let line = Self.stripTimestamp(String(raw.filter { $0 != "\r" }))
            if banner == nil, let range = line.firstRange(of: "Linux version ") {
                let text = String(line[range.lowerBound...])
                banner = text
                release = text.split(separator: " ").dropFirst(2).first.map(String.init)
            } else if let range = line.firstRange(of: "BIOS-e820: [mem ") {
                // "BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable"
                let rest = line[range.upperBound...]
                guard let close = rest.firstIndex(of: "]"), let dash = rest[..<close].firstIndex(of: "-") else { continue }
                if let start = Self.hexNumber(rest[..<dash]), let end = Self.hexNumber(rest[rest.index(after: dash)..<close]) {
                    let type = rest[rest.index(after: close)...].trimmingSpaces()
                    memoryMap.append(MemoryRange(start: start, end: end, type: type))
                }
            } else if memoryLine == nil, let range = line.firstRange(of: "Memory: "), line.contains("K available") {
                let text = String(line[range.lowerBound...])
                memoryLine = text
                if let slash = text.firstIndex(of: "/") {
                    let digits = text[text.index(after: slash)...].prefix { $0.isNumber }
                    memoryTotalKiB = Int(digits)
                }
            } else if hypervisor == nil, let range = line.firstRange(of: "Hypervisor detected: ") {
                hypervisor = line[range.upperBound...].trimmingSpaces()
            } else if let range = line.firstRange(of: "smpboot: Total of ") {
                processors = Int(line[range.upperBound...].prefix { $0.isNumber })
            } else if panic == nil, let range = line.firstRange(of: "Kernel panic - not syncing: ") {
                panic = line[range.lowerBound...].trimmingSpaces()
            }
        }
    }

    /// Drops a leading "[    1.234567] ".
    static func stripTimestamp(_ line: String) -> String {
        guard line.hasPrefix("["), let close = line.firstIndex(of: "]") else { return line }
        let inside = line[line.index(after: line.startIndex)..<close]
        guard inside.allSatisfy({ $0 == " " || $0 == "." || $0.isNumber }) else { return line }
        return String(line[line.index(after: close)...]).trimmingSpaces()
    }

    static func hexNumber<S: StringProtocol>(_ text: S) -> UInt64? {
        let digits = text.hasPrefix("0x") ? String(text.dropFirst(2)) : String(text)
        return UInt64(digits, radix: 16)
    }
}

/// The lines of `text`, whether they end in "\n" or "\r\n" (a serial console's: the guest's tty turns "\n"
/// into "\r\n", and Swift counts "\r\n" as one Character, which `split(separator: "\n")` never meets).
public func textLines(_ text: String, omittingEmpty: Bool = true) -> [Substring] {
    text.split(omittingEmptySubsequences: omittingEmpty, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return String(s)
    }
}
