// PauseGate: pausing a running VM, the base a snapshot stands on. A pause parks every vCPU thread outside
// KVM_RUN, so its registers, its LAPIC and the VM's irqchip, PIT and clock can be read (a vCPU ioctl from
// another thread would wait for KVM_RUN to return), and the devices go quiet because only vCPU threads
// drive them (a snapshot refuses machines with a device thread: the virtio console).
//
// The controller (the run loop's thread) calls `request()`, kicks the vCPUs (signal + immediate_exit) and
// `waitUntilParked`; each vCPU thread sees the request at the top of its loop, first runs KVM_RUN once
// with immediate_exit set so that an exit it just handled is completed inside KVM (a port read's value
// lands in RAX; api.rst §5 "immediate_exit"), then parks until `release()`. A vCPU may also request the
// pause itself (the snapshot marker): it parks right after the marker's OUT, at a deterministic point.
// POSIX mutex and condition variable, as in VCPUGate; CLOCK_MONOTONIC for the timed wait.
import Glibc
import Synchronization

final class PauseGate: @unchecked Sendable {
    /// Read by vCPU threads before each KVM_RUN (cheap); the mutex guards the rest.
    let requested = Atomic<Bool>(false)
    // SAFETY: both pointers are allocated and initialised in init, destroyed and freed in deinit, and only
    // used through pthread calls; `parked` and `ending` are read and written with `mutex` held.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private var parked = 0
    private var ending = false

    init() {
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    var isPaused: Bool { requested.load(ordering: .acquiring) }

    func request() { requested.store(true, ordering: .releasing) }

    /// vCPU side: parks until the pause is released or the run ends.
    func park() {
        pthread_mutex_lock(mutex)
        parked += 1
        pthread_cond_broadcast(condition)
        while requested.load(ordering: .acquiring) && !ending { pthread_cond_wait(condition, mutex) }
        parked -= 1
        pthread_mutex_unlock(mutex)
    }

    /// Controller side: waits until `count` vCPUs are parked (true), or the run ends or `milliseconds` pass (false).
    func waitUntilParked(count: Int, milliseconds: Int) -> Bool {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        deadline.tv_sec += milliseconds / 1000
        deadline.tv_nsec += (milliseconds % 1000) * 1_000_000
        if deadline.tv_nsec >= 1_000_000_000 { deadline.tv_sec += 1; deadline.tv_nsec -= 1_000_000_000 }
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while !ending && parked < count {
            if pthread_cond_timedwait(condition, mutex, &deadline) == ETIMEDOUT { break }
        }
        return parked >= count
    }

    /// Lets the parked vCPUs run again.
    func release() {
        pthread_mutex_lock(mutex)
        requested.store(false, ordering: .releasing)
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    /// The run is over: no vCPU parks any more.
    func end() {
        pthread_mutex_lock(mutex)
        ending = true
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }
}
