// SnapshotError: why a snapshot file was refused or could not be written, as the one line a user reads.
// Every refusal of a file a user gave is bad input (exit status 2), and no VM is started.
public enum SnapshotError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file ends before something it announces.
    case truncated(String)
    /// A field holds a value the format does not allow.
    case malformed(String)
    /// Not a Swiftlet snapshot at all.
    case foreign(String)
    /// The checksum does not match: the file changed after it was written.
    case corrupted(String)
    /// Written by a newer Swiftlet whose format this one does not read.
    case futureVersion(found: UInt32, supported: UInt32)
    /// A valid snapshot of a machine this host or these options cannot be: backend, CPU vendor, configuration.
    case mismatch(String)
    /// Reading or writing the file failed.
    case io(String)

    public var description: String {
        switch self {
        case let .truncated(what): "truncated: \(what)"
        case let .malformed(what): "malformed: \(what)"
        case let .foreign(what): "not a Swiftlet snapshot: \(what)"
        case let .corrupted(what): "corrupted: \(what)"
        case let .futureVersion(found, supported):
            "format version \(found) is newer than this swiftlet reads (version \(supported)); restore it with the swiftlet that wrote it"
        case let .mismatch(what): "does not fit: \(what)"
        case let .io(what): what
        }
    }
}
