// SchemaValidator: checks a JSON document against docs/compare-schema.json, for the keywords that schema
// uses (JSON Schema 2020-12): type (one or a list), const, enum, required, properties,
// additionalProperties: false, items, and $ref to "#/$defs/NAME". Any other keyword in the schema is an
// error, so the schema cannot silently outgrow the validator.
import Container

struct SchemaValidator {
    let root: JSONValue
    static let known: Set = ["$schema", "$id", "$defs", "$ref", "title", "description", "type", "const", "enum",
                             "required", "properties", "additionalProperties", "items"]

    /// Every violation, as "path: problem"; empty when the document conforms.
    func validate(_ value: JSONValue) -> [String] {
        var problems: [String] = []
        check(value, against: root, path: "$", problems: &problems)
        return problems
    }

    private func check(_ value: JSONValue, against schema: JSONValue, path: String, problems: inout [String]) {
        guard case let .object(members) = schema else { problems.append("\(path): schema is not an object"); return }
        let rules = Dictionary(members, uniquingKeysWith: { a, _ in a })
        for key in rules.keys where !Self.known.contains(key) { problems.append("\(path): the validator does not know keyword \(key)") }
        if case let .string(reference)? = rules["$ref"] {
            let name = String(reference.dropFirst("#/$defs/".count))
            guard reference.hasPrefix("#/$defs/"), let target = definition(name) else { problems.append("\(path): unresolvable $ref \(reference)"); return }
            check(value, against: target, path: path, problems: &problems)
        }
        if let type = rules["type"] {
            let allowed: [String]
            switch type {
            case let .string(one): allowed = [one]
            case let .array(list): allowed = list.compactMap { if case let .string(s) = $0 { s } else { nil } }
            default: allowed = []
            }
            if !allowed.contains(where: { Self.matches(value, $0) }) { problems.append("\(path): \(value.kind) is not of type \(allowed.joined(separator: " or "))") }
        }
        if let constant = rules["const"], constant != value { problems.append("\(path): must be \(constant.formatted().filter { $0 != "\n" })") }
        if case let .array(options)? = rules["enum"], !options.contains(value) {
            problems.append("\(path): \(value.formatted().filter { $0 != "\n" }) is not one of the allowed values")
        }
        if case let .object(fields) = value {
            let present = Set(fields.map(\.0))
            if case let .array(required)? = rules["required"] {
                for case let .string(name) in required where !present.contains(name) { problems.append("\(path): missing \(name)") }
            }
            var properties: [String: JSONValue] = [:]
            if case let .object(list)? = rules["properties"] { properties = Dictionary(list, uniquingKeysWith: { a, _ in a }) }
            for (name, member) in fields {
                if let sub = properties[name] {
                    check(member, against: sub, path: "\(path).\(name)", problems: &problems)
                } else if rules["additionalProperties"] == .bool(false) {
                    problems.append("\(path): unexpected member \(name)")
                }
            }
        }
        if case let .array(elements) = value, let items = rules["items"] {
            for (i, element) in elements.enumerated() { check(element, against: items, path: "\(path)[\(i)]", problems: &problems) }
        }
    }

    private func definition(_ name: String) -> JSONValue? {
        guard case let .object(members) = root, let defs = members.first(where: { $0.0 == "$defs" })?.1,
              case let .object(list) = defs else { return nil }
        return list.first { $0.0 == name }?.1
    }

    static func matches(_ value: JSONValue, _ type: String) -> Bool {
        switch (type, value) {
        case ("null", .null), ("boolean", .bool), ("string", .string), ("array", .array), ("object", .object), ("number", .number): true
        case let ("integer", .number(n)): n == n.rounded()
        default: false
        }
    }
}
