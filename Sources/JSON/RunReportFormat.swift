// RunReportFormat: the one definition of the run report's JSON layout, written by `swiftlet boot --report`
// (VMM/RunReport.swift) and `swiftlet container run --report` (Container/ContainerReport.swift) and read back
// by `swiftlet compare` (Compare/Parsers.swift).
//
// Writers collect (key, value) entries in the order things happened: a scalar ("exit_status 0"), a line of
// a multi-line text ("message ..."), or a record whose space-separated fields are named below ("exit io 12
// 3400 5600"). The file is one JSON object, version 2:
//   {"format": "swiftlet-run-report", "version": 2, "side": "vm", "started_ns": 123,
//    "milestones": [{"ns": 1, "name": "kernel loaded"}], "exits": [{"reason": "io", "count": 12, ...}], ...}
// Records become arrays of objects under the plural name; integers become numbers; multi-line text one string.

public enum RunReportFormat {
    public static let name = "swiftlet-run-report"
    public static let version = 2

    /// A record kind: its entry key, the array it is written under, and its fields. `restField` takes the
    /// words left over in the middle (a milestone's or step's name may contain spaces).
    struct Record {
        let key: String
        let array: String
        let leading: [String]
        let restField: String?
        let trailing: [String]
    }

    static let records: [Record] = [
        Record(key: "milestone", array: "milestones", leading: ["ns"], restField: "name", trailing: []),
        Record(key: "marker", array: "markers", leading: ["code", "ns"], restField: nil, trailing: []),
        Record(key: "exit", array: "exits", leading: ["reason", "count", "guest_ns", "vmm_ns"], restField: nil, trailing: []),
        Record(key: "unmapped", array: "unmapped_accesses", leading: ["access", "address", "size", "value"], restField: nil, trailing: []),
        Record(key: "port_unassigned", array: "unassigned_port_accesses", leading: ["access", "port", "size", "value"], restField: nil, trailing: []),
        Record(key: "finished", array: "finished_instructions", leading: ["mnemonic", "count"], restField: nil, trailing: []),
        Record(key: "step", array: "steps", leading: ["side"], restField: "name", trailing: ["at_ns"]),
        // A confined VMM thread's filter, measured: the calls it lets through (comma-separated) and how many ioctl requests.
        Record(key: "seccomp_thread", array: "seccomp_threads", leading: ["thread", "calls", "ioctl_requests"], restField: nil, trailing: []),
    ]

    /// Keys whose value may span several entries (one per line), written as one string.
    static let textKeys: Set = ["message", "diagnosis", "cmdline", "error"]

    static func number(_ word: Substring) -> JSONValue {
        if let n = Int64(word) { return .number(Double(n)) }
        return .string(String(word))
    }

    /// The entries as the report's JSON object.
    public static func json(_ entries: [(key: String, value: String)]) -> JSONValue {
        var order: [String] = []
        var groups: [String: [String]] = [:]
        for (key, value) in entries {
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(value)
        }
        var members: [(String, JSONValue)] = [("format", .string(name)), ("version", .number(Double(version)))]
        for key in order {
            let values = groups[key] ?? []
            if let record = records.first(where: { $0.key == key }) {
                members.append((record.array, .array(values.map { object(for: record, $0) })))
            } else if textKeys.contains(key) {
                members.append((key, .string(values.joined(separator: "\n"))))
            } else {
                members.append((key, number(Substring(values.last ?? ""))))
            }
        }
        return .object(members)
    }

    static func object(for record: Record, _ value: String) -> JSONValue {
        var words = value.split(separator: " ", omittingEmptySubsequences: false)[...]
        var fields: [(String, JSONValue)] = []
        for field in record.leading {
            guard let word = words.popFirst() else { break }
            fields.append((field, number(word)))
        }
        var tail: [(String, JSONValue)] = []
        for field in record.trailing.reversed() {
            guard words.count > (record.restField == nil ? 0 : 1), let word = words.popLast() else { break }
            tail.insert((field, number(word)), at: 0)
        }
        if let rest = record.restField { fields.append((rest, .string(words.joined(separator: " ")))) }
        return .object(fields + tail)
    }

    /// The entries a report's JSON holds, in the writers' (key, value) form; nil when it is not a run report.
    public static func entries(_ document: JSONValue) -> (version: Int, entries: [(key: String, value: String)])? {
        guard case let .object(members) = document,
              members.first(where: { $0.0 == "format" })?.1 == .string(name),
              case let .number(version)? = members.first(where: { $0.0 == "version" })?.1 else { return nil }
        var entries: [(key: String, value: String)] = []
        for (key, value) in members where key != "format" && key != "version" {
            if let record = records.first(where: { $0.array == key }), case let .array(items) = value {
                for case let .object(fields) in items {
                    entries.append((record.key, fields.map { text($0.1) }.joined(separator: " ")))
                }
            } else if case let .string(s) = value, textKeys.contains(key) {
                for line in s.split(separator: "\n", omittingEmptySubsequences: false) { entries.append((key, String(line))) }
            } else {
                entries.append((key, text(value)))
            }
        }
        return (Int(version), entries)
    }

    static func text(_ value: JSONValue) -> String {
        switch value {
        case let .string(s): s
        case let .number(n): n == n.rounded() && abs(n) < 1e18 ? String(Int64(n)) : "\(n)"
        case let .bool(b): b ? "true" : "false"
        default: ""
        }
    }
}
