// Comparison: the result of `swiftlet compare`, the one value the text table, the JSON document
// (docs/compare-schema.json, "swiftlet-compare/1") and the HTML page are all rendered from.
//
// A comparison has columns (the container, the VM; the host as a reference) and rows (questions). Every
// cell either holds a value someone measured or observed — with the source saying who and how — or says
// why it is unavailable. Nothing is filled in by assumption: a cell without a measurement is unavailable.

public struct Cell: Sendable, Equatable {
    /// The answer as a reader sees it; nil when unavailable.
    public var value: String?
    /// The answer as a number, for charts and tests, with its unit ("ms", "KiB", "count").
    public var number: Double?
    public var unit: String?
    /// Who measured or observed it, and how ("the guest's CPUID instruction", "wait4 ru_maxrss").
    public var source: String
    /// Why there is no value.
    public var unavailable: String?
    /// Visibility rows: true when the workload can see the host's thing, false when it cannot.
    public var hostVisible: Bool?

    public static func measured(_ value: String, number: Double? = nil, unit: String? = nil, source: String, hostVisible: Bool? = nil) -> Cell {
        Cell(value: value, number: number, unit: unit, source: source, unavailable: nil, hostVisible: hostVisible)
    }

    public static func unavailable(_ reason: String, source: String = "") -> Cell {
        Cell(value: nil, number: nil, unit: nil, source: source, unavailable: reason, hostVisible: nil)
    }

    public var isAvailable: Bool { value != nil }
    /// The text a table shows: the value, or "unavailable: why".
    public var display: String { value ?? "unavailable: \(unavailable ?? "not measured")" }
}

public struct Row: Sendable, Equatable {
    public enum Group: String, Sendable, CaseIterable {
        case startup, memory, kernel, resources, visibility, cpu, boundary
        public var title: String {
            switch self {
            case .startup: "Start-up"
            case .memory: "Host memory"
            case .kernel: "Kernel and PID 1"
            case .resources: "CPUs and memory visible"
            case .visibility: "What of the host is visible"
            case .cpu: "CPU identity"
            case .boundary: "The boundary: bad memory reads, port I/O, system calls"
            }
        }
    }

    public var id: String
    public var label: String
    public var group: Group
    /// By column id: "container", "vm", "host".
    public var cells: [String: Cell]

    public subscript(_ column: String) -> Cell? { cells[column] }
}

/// A point on a column's start-up timeline, in ms since compare started that column's process.
public struct TimelineMark: Sendable, Equatable {
    public var name: String
    public var milliseconds: Double
}

public struct Column: Sendable, Equatable {
    public var id: String
    public var title: String
    /// The commands compare ran for this column, one line each.
    public var runs: [String] = []
    /// True when the command (or the probe) ran to its end; false with `failure` saying what happened.
    public var completed = false
    public var failure: String?
    /// The command's exit status, when it ran.
    public var commandStatus: Int32?
    public var timeline: [TimelineMark] = []
    /// What the command printed (container: its stdout; VM: its lines on the serial console).
    public var output = ""
    /// Notes worth showing in full: the guest kernel's banner, its memory map, the VMM's diagnosis.
    public var details: [Detail] = []
    /// The VM column only: the snapshot file the VM was restored from (`--vm-snapshot`); nil when it booted.
    /// Every view names it, so a restore is never shown as a boot.
    public var restoredFrom: String?

    /// The column's short name in tables and charts: "container", "VM", "VM (restored)", "host".
    public var shortName: String {
        switch id {
        case "vm": restoredFrom == nil ? "VM" : "VM (restored)"
        default: id
        }
    }

    public struct Detail: Sendable, Equatable {
        public var title: String
        public var text: String
    }

    public init(id: String, title: String) {
        self.id = id
        self.title = title
    }
}

public struct Comparison: Sendable, Equatable {
    public static let schema = "swiftlet-compare/1"

    public enum Mode: String, Sendable { case command, probe }

    public var mode: Mode
    public var command: [String]
    /// The module behind /dev/kvm on this host (kvm_pvm, kvm_intel, kvm_amd, unknown).
    public var backend: String
    /// What changes on hardware KVM, when this host does not have it; nil on hardware KVM.
    public var backendNote: String?
    public var columns: [Column]
    public var rows: [Row]
    /// What the VM column boots, in a sentence for whoever reads the start-up chart: the probe tiny guest
    /// (no operating system) or a Linux kernel + busybox. Pages and text say it next to the timings.
    public var vmGuest: String? = nil

    public func column(_ id: String) -> Column? { columns.first { $0.id == id } }
    public func row(_ id: String) -> Row? { rows.first { $0.id == id } }

    /// True when every compared column ran the command (or the probe) to its end with status 0.
    public var succeeded: Bool {
        columns.filter { $0.id != "host" }.allSatisfy { $0.completed && $0.commandStatus == 0 }
    }

    /// compare's exit status: 0 when every column ran to the end with status 0, 1 otherwise (the report
    /// shows the failure in the column that failed).
    public var exitStatus: Int32 { succeeded ? 0 : 1 }
}
