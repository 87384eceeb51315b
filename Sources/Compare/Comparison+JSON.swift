// Comparison+JSON: `swiftlet compare --json`, the document docs/compare-schema.json describes
// ("schema": "swiftlet-compare/1"). Written with the Container module's JSON writer (no Foundation).
// Compatibility rule: version 1 only ever gains optional members; a change to an existing member's meaning
// or type makes "swiftlet-compare/2".
import Container

extension Comparison {
    public var jsonValue: JSONValue {
        .object([
            ("schema", .string(Self.schema)),
            ("mode", .string(mode.rawValue)),
            ("command", .array(command.map { .string($0) })),
            ("backend", .string(backend)),
            ("backend_note", backendNote.map { .string($0) } ?? .null),
            ("succeeded", .bool(succeeded)),
            ("exit_status", .number(Double(exitStatus))),
            ("columns", .array(columns.map(\.jsonValue))),
            ("rows", .array(rows.map(\.jsonValue))),
        ])
    }

    /// The JSON document, pretty-printed, ending in a newline.
    public var json: String { jsonValue.formatted() }
}

extension Column {
    var jsonValue: JSONValue {
        .object([
            ("id", .string(id)),
            ("title", .string(title)),
            ("restored_from", restoredFrom.map { .string($0) } ?? .null),
            ("runs", .array(runs.map { .string($0) })),
            ("completed", .bool(completed)),
            ("failure", failure.map { .string($0) } ?? .null),
            ("command_status", commandStatus.map { .number(Double($0)) } ?? .null),
            ("timeline", .array(timeline.map { .object([("name", .string($0.name)), ("ms", .number(rounded($0.milliseconds)))]) })),
            ("output", .string(output)),
            ("details", .array(details.map { .object([("title", .string($0.title)), ("text", .string($0.text))]) })),
        ])
    }
}

extension Row {
    var jsonValue: JSONValue {
        let order = ["container", "vm", "host"]
        return .object([
            ("id", .string(id)),
            ("label", .string(label)),
            ("group", .string(group.rawValue)),
            ("cells", .object(order.compactMap { key in cells[key].map { (key, $0.jsonValue) } })),
        ])
    }
}

extension Cell {
    var jsonValue: JSONValue {
        var members: [(String, JSONValue)] = [
            ("value", value.map { .string($0) } ?? .null),
            ("source", .string(source)),
            ("unavailable", unavailable.map { .string($0) } ?? .null),
        ]
        if let number {
            members.append(("number", .number(rounded(number))))
            members.append(("unit", .string(unit ?? "")))
        }
        if let hostVisible { members.append(("host_visible", .bool(hostVisible))) }
        return .object(members)
    }
}

/// Three decimals are enough for milliseconds and KiB, and keep the JSON free of binary-fraction noise.
func rounded(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }
