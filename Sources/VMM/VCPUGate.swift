// VCPUGate: the all-stop rule of a gdb session (GDB manual, "All-Stop Mode"): when one vCPU stops for the
// debugger, every vCPU stops, and none runs again until gdb resumes them, each with its own action
// (continue, step, or stay stopped).
//
// vCPU threads call `wait(vcpu:)` before every KVM_RUN; it returns at once while the machine runs and the
// vCPU may, and parks the thread otherwise. A stop comes from a vCPU (a breakpoint, a finished step) or
// from the gdb server (Ctrl-C, a new connection): the first `reportStop` wins, later ones are dropped
// until the next resume (a vCPU that hit a breakpoint at the same time hits it again when it resumes).
// The server waits with `waitUntilParked` for every vCPU to be parked before it touches their registers:
// KVM's vCPU ioctls from another thread would otherwise wait for KVM_RUN to return. POSIX mutex and
// condition variable (the Synchronization module has no condition variable); the condition's clock is
// CLOCK_MONOTONIC so the timed waits do not jump with the wall clock.
import Glibc
import GDBRemote

final class VCPUGate: @unchecked Sendable {
    // SAFETY: both pointers are allocated and initialised in init, destroyed and freed in deinit, and
    // only used through pthread calls; every stored property below is read and written with `mutex` held.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private var stopped = true
    private var ending = false
    private var actions: [ResumeAction]
    private var parked: [Bool]
    private var event: StopEvent?
    /// Called (without the lock) after a stop was recorded: kick the vCPUs out of KVM_RUN, wake the server.
    private let onStop: @Sendable (StopEvent) -> Void

    init(vcpuCount: Int, initial: StopEvent, onStop: @escaping @Sendable (StopEvent) -> Void) {
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
        actions = [ResumeAction](repeating: .stop, count: vcpuCount)
        parked = [Bool](repeating: false, count: vcpuCount)
        event = initial
        self.onStop = onStop
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    /// vCPU side: returns what to do next (continue or step), parking the thread while the machine is
    /// stopped or this vCPU was told to stay; nil once the run is ending.
    func wait(vcpu: Int) -> ResumeAction? {
        locked {
            while !ending && (stopped || actions[vcpu] == .stop) {
                if !parked[vcpu] {
                    parked[vcpu] = true
                    pthread_cond_broadcast(condition)
                }
                pthread_cond_wait(condition, mutex)
            }
            parked[vcpu] = false
            return ending ? nil : actions[vcpu]
        }
    }

    /// Parks a vCPU that must stop where it is (a guest about to end badly) until gdb resumes it.
    func holdUntilResumed(vcpu: Int) { _ = wait(vcpu: vcpu) }

    /// Any thread: stop the machine for `event` unless it is already stopped. True when this event won.
    @discardableResult
    func reportStop(_ event: StopEvent) -> Bool {
        let won: Bool = locked {
            guard !stopped, !ending else { return false }
            stopped = true
            self.event = event
            pthread_cond_broadcast(condition)
            return true
        }
        if won { onStop(event) }
        return won
    }

    /// Server side: waits until every vCPU is parked (or the run ends, or `milliseconds` pass); true when all are.
    func waitUntilParked(milliseconds: Int) -> Bool {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        deadline.tv_sec += milliseconds / 1000
        deadline.tv_nsec += (milliseconds % 1000) * 1_000_000
        if deadline.tv_nsec >= 1_000_000_000 { deadline.tv_sec += 1; deadline.tv_nsec -= 1_000_000_000 }
        return locked {
            while !ending && parked.contains(false) {
                if pthread_cond_timedwait(condition, mutex, &deadline) == ETIMEDOUT { break }
            }
            return !parked.contains(false)
        }
    }

    /// Whether vCPU `index` is parked now (its registers may be touched).
    func isParked(_ index: Int) -> Bool { locked { index < parked.count && parked[index] } }

    /// The event that stopped the machine, once (nil while it runs or when already taken).
    func takeEvent() -> StopEvent? {
        locked {
            guard stopped else { return nil }
            defer { event = nil }
            return event
        }
    }

    var isStopped: Bool { locked { stopped } }
    var isEnding: Bool { locked { ending } }

    /// The action vCPU `index` was last given.
    func action(_ index: Int) -> ResumeAction { locked { actions[index] } }

    /// Server side: resume with an action per vCPU index (missing ones stay stopped).
    func resume(_ plan: [Int: ResumeAction]) {
        locked {
            for i in actions.indices { actions[i] = plan[i] ?? .stop }
            stopped = false
            event = nil
            pthread_cond_broadcast(condition)
        }
    }

    /// The run is over: release every parked vCPU for good.
    func end() {
        locked {
            ending = true
            pthread_cond_broadcast(condition)
        }
    }
}
