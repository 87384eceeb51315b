// Fixtures: what the compare tests run with: the swiftlet binary built beside the tests, the busybox rootfs
// (guest/rootfs/build.sh, the recipe the Linux initramfs uses too), the minimal Linux kernel
// (guest/linux/out, or $SWIFTLET_LINUX_DIR), the JSON schema, and the host's own answers.
import Compare
import Container
import Glibc
import KVM
import TestSupport

enum CompareFixtures {
    static let repositoryRoot: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()

    /// The rootfs directory, built if needed (as root); nil when it cannot be had.
    static let rootfs: String? = {
        let existing = repositoryRoot + "/guest/rootfs/out/rootfs"
        guard geteuid() == 0 || access(existing + "/bin/busybox", X_OK) == 0 else { return nil }
        let run = ChildProcess.run([repositoryRoot + "/guest/rootfs/build.sh"], deadline: 300, workDirectory: "/tmp")
        guard run.status == 0, let path = run.stdout.split(separator: "\n").last.map(String.init),
              access(path + "/bin/busybox", X_OK) == 0 else { return nil }
        return path
    }()

    static var canRunContainers: Bool { Prerequisite.available(geteuid() == 0 && rootfs != nil) }
    static let containerReason = "needs root and the busybox rootfs (guest/rootfs/build.sh; apt-get install busybox-static)"

    static var linuxDirectory: String {
        if let value = getenv("SWIFTLET_LINUX_DIR") { return String(cString: value) }
        return repositoryRoot + "/guest/linux/out"
    }
    static var bzImage: String { linuxDirectory + "/bzImage" }
    static var initramfs: String { linuxDirectory + "/initramfs.cpio" }
    static var linuxPresent: Bool { Prerequisite.files(bzImage, initramfs) }
    static let linuxReason = "no minimal Linux kernel in guest/linux/out or $SWIFTLET_LINUX_DIR: run guest/linux/build.sh (CI does)"

    static let schema: JSONValue = {
        let text = ChildProcess.readText(repositoryRoot + "/docs/compare-schema.json")
        return (try? JSONParser.parse(text)) ?? .null
    }()

    /// `uname -r` of the host, from uname(2) in this test process.
    static var hostRelease: String {
        var name = utsname()
        uname(&name)
        return withUnsafeBytes(of: name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// Runs `swiftlet compare ARGUMENTS` through the built front end (which hands compare to swiftlet-cli).
    static func compare(_ arguments: [String], deadline: Double = 600) -> ChildRun {
        ChildProcess.run([ProcessRunner.swiftletPath, "compare", "--quiet"] + arguments, deadline: deadline, workDirectory: "/tmp")
    }

    /// The JSON document a compare run printed, parsed, and the schema violations found in it.
    static func document(_ run: ChildRun) -> (JSONValue, [String]) {
        guard let value = try? JSONParser.parse(run.stdout) else { return (.null, ["stdout is not JSON: \(run.stdout.prefix(300)) \(run.stderr)"]) }
        return (value, SchemaValidator(root: schema).validate(value))
    }
}

/// Reading a parsed compare document.
extension JSONValue {
    subscript(_ key: String) -> JSONValue? {
        guard case let .object(members) = self else { return nil }
        return members.first { $0.0 == key }?.1
    }

    var string: String? { if case let .string(s) = self { s } else { nil } }
    var number: Double? { if case let .number(n) = self { n } else { nil } }
    var bool: Bool? { if case let .bool(b) = self { b } else { nil } }
    var array: [JSONValue] { if case let .array(a) = self { a } else { [] } }

    func row(_ id: String) -> JSONValue? { self["rows"]?.array.first { $0["id"]?.string == id } }
    func cell(_ row: String, _ column: String) -> JSONValue? { self.row(row)?["cells"]?[column] }
    func value(_ row: String, _ column: String) -> String? { cell(row, column)?["value"]?.string }
    func column(_ id: String) -> JSONValue? { self["columns"]?.array.first { $0["id"]?.string == id } }
}

/// Every cell has a value or a reason, never both and never neither (what the schema cannot say).
func cellsAreValueXorReason(_ document: JSONValue) -> [String] {
    var problems: [String] = []
    for row in document["rows"]?.array ?? [] {
        guard case let .object(cells)? = row["cells"] else { continue }
        for (column, cell) in cells {
            let hasValue = cell["value"]?.string != nil
            let hasReason = cell["unavailable"]?.string != nil
            if hasValue == hasReason { problems.append("\(row["id"]?.string ?? "?").\(column): value and unavailable must be exactly one") }
        }
    }
    return problems
}
