// ContainerError: every way a container run can fail before its command runs, as the one line a user
// reads: "<step>: <what> (<errno text>)". The CLI prefixes "swiftlet container: " and exits with
// `exitStatus` (125 like crun and docker; 126 and 127 when the command cannot be executed or found).
import SystemPackage

public struct ContainerError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The setup step that failed, e.g. "cgroup", "mounts", "exec".
    public var step: String
    /// What was being done, with the path or value involved.
    public var what: String
    /// The system error, when there was one.
    public var errno: Errno?
    /// A hint for the user, printed after the errno text.
    public var hint: String?
    /// The launcher's exit status for this failure.
    public var exitStatus: Int32

    public init(step: String, _ what: String, errno: Errno? = nil, hint: String? = nil, exitStatus: Int32 = 125) {
        self.step = step
        self.what = what
        self.errno = errno
        self.hint = hint
        self.exitStatus = exitStatus
    }

    public var description: String {
        var text = "\(step): \(what)"
        switch (errno, hint) {
        case let (errno?, hint?): text += " (\(errno.description); \(hint))"
        case let (errno?, nil): text += " (\(errno.description))"
        case let (nil, hint?): text += " (\(hint))"
        case (nil, nil): break
        }
        return text
    }

    /// An invalid option or spec value.
    static func invalid(_ what: String, hint: String? = nil) -> ContainerError {
        ContainerError(step: "spec", what, hint: hint)
    }
}
