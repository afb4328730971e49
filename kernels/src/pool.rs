//! A pool of threads that the matmuls split their weight rows across, and attention its heads.
//!
//! The pool owns no threads: [`start`] hands each of its workers to a `spawn` function, which
//! runs [`Worker::run`] on a thread of its own: a `std::thread` natively ([`start_native`]),
//! or, in a wasm32 build with shared memory, a Web Worker running the same module. Nothing
//! here needs more than std's `Mutex`, `Condvar` and atomics, which a wasm32 build with the
//! `atomics` target feature implements with `memory.atomic.wait32` and `notify`.
//!
//! [`Pool::run`] offers `count` tasks; the caller and the workers claim them one at a time
//! (an atomic counter tagged with the offer's epoch, so a worker late for one offer can never
//! claim a task of the next), and `run` returns once all are done. Workers wait for an offer
//! by spinning a while and then on a condition variable: a decode step offers a matmul every
//! few tens of microseconds, far less than a sleeping thread takes to wake.
//!
//! One offer runs at a time: a `run` that finds the pool busy (another thread's matmul, as in
//! tests run side by side) runs its tasks itself, in order.

use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, TryLockError};

use thiserror::Error;

/// Times a waiting thread checks for work before it sleeps: about a millisecond either way.
/// `spin_loop` is a pause of some tens of cycles on x86-64 and nothing at all in wasm, where
/// the loop is then only its atomic load.
const SPINS: u32 = if cfg!(target_arch = "wasm32") {
    1 << 20
} else {
    1 << 15
};

/// The most ranges [`Pool::for_each_range`] cuts per thread. The threads take ranges one at a
/// time, so the last to finish runs at most one range past the others: with four a thread,
/// SmolLM2's 28 MB output matmul left one thread waiting up to 1.7 ms for the other in
/// Chromium, and the caller spent 11 % of a decode step waiting. Taking one is an atomic
/// compare-and-swap on a line the thread's own lane keeps to itself.
const RANGES_PER_THREAD: usize = 16;

/// A pool that could not be started.
#[derive(Debug, Error, PartialEq)]
pub enum PoolError {
    /// [`start`] was called before.
    #[error("the thread pool is already running with {threads} threads")]
    AlreadyStarted {
        /// The running pool's threads, its caller included.
        threads: usize,
    },
    /// A thread count below one.
    #[error("a thread pool needs at least one thread, not {0}")]
    NoThreads(usize),
    /// The `spawn` function failed for a worker.
    #[error("could not start thread {index} of the pool: {reason}")]
    Spawn {
        /// Which worker (1 is the first; the caller is 0).
        index: usize,
        /// What `spawn` reported.
        reason: String,
    },
}

/// How a pool's work was shared: [`Pool::work`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolWork {
    /// Tasks offered to the workers, each range of a [`Pool::for_each_range`] one (runs of
    /// one task, and runs on a busy pool, are not offered).
    pub tasks: u64,
    /// Of those, the tasks the workers ran rather than the caller.
    pub by_workers: u64,
}

/// A task function with its lifetime erased: [`Pool::run`] keeps the function alive until
/// every claimed task has finished, and nothing calls it after that.
#[derive(Clone, Copy)]
struct TaskRef(*const (dyn Fn(usize) -> usize + Sync + 'static));

// SAFETY: the function is `Sync`, and `Pool::run` outlives every use of the pointer.
unsafe impl Send for TaskRef {}

/// What the pool offers its workers.
#[derive(Clone, Copy)]
struct Offer {
    /// Increases with each offer; 0 is "nothing offered yet".
    epoch: u32,
    task: Option<TaskRef>,
    count: usize,
    /// Set when the pool is dropped: its workers return.
    stop: bool,
    /// Workers asleep (or about to be) on the condition variable: an offer wakes them only if
    /// there are any, since waking costs a call into the runtime even when nobody waits.
    sleeping: usize,
}

/// A value alone on its cache line (128 bytes: x86's adjacent-line prefetcher fetches lines
/// in pairs), so that threads writing one atomic do not take another's line away.
#[repr(align(128))]
struct Line<T>(T);

impl<T> std::ops::Deref for Line<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

struct Shared {
    offer: Mutex<Offer>,
    wake: Condvar,
    /// The current offer's epoch in the high 32 bits, its next unclaimed task in the low.
    claim: AtomicU64,
    /// Tasks of the current offer finished.
    done: AtomicUsize,
    /// Whether a task of the current offer panicked.
    panicked: AtomicBool,
    /// Tasks offered to the workers so far, and those the workers ran.
    offered: AtomicU64,
    by_workers: AtomicU64,
}

impl Shared {
    /// Claims and runs tasks of `offer` until none is left; `worker` says who runs them.
    fn work(&self, offer: Offer, worker: bool) {
        let Some(TaskRef(task)) = offer.task else {
            return;
        };
        loop {
            let claim = self.claim.load(Ordering::Acquire);
            let index = (claim & u64::from(u32::MAX)) as usize;
            if (claim >> 32) as u32 != offer.epoch || index >= offer.count {
                return;
            }
            if self
                .claim
                .compare_exchange_weak(claim, claim + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            // SAFETY: a task of this epoch was claimed, so `run` is still waiting for it and
            // the function is alive.
            let task = unsafe { &*task };
            match panic::catch_unwind(AssertUnwindSafe(|| task(index))) {
                Ok(units) if worker => {
                    self.by_workers.fetch_add(units as u64, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => self.panicked.store(true, Ordering::Relaxed),
            }
            self.done.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// One of a pool's threads, to be run by the `spawn` function given to [`start`].
pub struct Worker(Arc<Shared>);

impl Worker {
    /// Runs tasks as the pool offers them, until the pool is dropped.
    pub fn run(self) {
        let mut seen = 0;
        loop {
            let offer = self.next_offer(seen);
            if offer.stop {
                return;
            }
            seen = offer.epoch;
            self.0.work(offer, true);
        }
    }

    /// The first offer after epoch `seen`: spinning a while, then asleep.
    fn next_offer(&self, seen: u32) -> Offer {
        for _ in 0..SPINS {
            if (self.0.claim.load(Ordering::Acquire) >> 32) as u32 != seen {
                break;
            }
            std::hint::spin_loop();
        }
        let mut offer = self.0.offer.lock().unwrap_or_else(PoisonError::into_inner);
        offer.sleeping += 1;
        let mut offer = self
            .0
            .wake
            .wait_while(offer, |o| o.epoch == seen && !o.stop)
            .unwrap_or_else(PoisonError::into_inner);
        offer.sleeping -= 1;
        *offer
    }
}

/// Threads that run a job's tasks together: the caller of [`Pool::run`] and its workers.
pub struct Pool {
    shared: Arc<Shared>,
    threads: usize,
    /// Held by the one `run` that has the workers.
    busy: Mutex<()>,
}

impl Pool {
    /// A pool of `threads` threads in all: the caller of `run` and `threads - 1` workers, each
    /// given to `spawn` to run.
    pub fn new<E: std::fmt::Display>(
        threads: usize,
        mut spawn: impl FnMut(Worker) -> Result<(), E>,
    ) -> Result<Self, PoolError> {
        if threads == 0 {
            return Err(PoolError::NoThreads(threads));
        }
        let shared = Arc::new(Shared {
            offer: Mutex::new(Offer {
                epoch: 0,
                task: None,
                count: 0,
                stop: false,
                sleeping: 0,
            }),
            wake: Condvar::new(),
            claim: AtomicU64::new(0),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            offered: AtomicU64::new(0),
            by_workers: AtomicU64::new(0),
        });
        let pool = Pool {
            shared,
            threads,
            busy: Mutex::new(()),
        };
        for index in 1..threads {
            spawn(Worker(pool.shared.clone())).map_err(|e| PoolError::Spawn {
                index,
                reason: e.to_string(),
            })?;
        }
        Ok(pool)
    }

    /// Threads in all, the caller included.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The tasks the pool has shared out so far, and how many its workers ran.
    pub fn work(&self) -> PoolWork {
        PoolWork {
            tasks: self.shared.offered.load(Ordering::Relaxed),
            by_workers: self.shared.by_workers.load(Ordering::Relaxed),
        }
    }

    /// Runs `task(i)` for each `i` in `0..count`, on the caller and the workers, and returns
    /// when all are done. A task's panic is raised again here.
    pub fn run(&self, count: usize, task: &(dyn Fn(usize) + Sync)) {
        self.share(count, count, &|i| {
            task(i);
            1
        });
    }

    /// Runs `task(i)` for each `i` in `0..count` as [`Pool::run`] does, where each task does
    /// the number of units it returns, out of `units` in all, for the pool's account
    /// ([`Pool::work`]) when the tasks are offered to the workers (not when there is one task
    /// or one thread, or when the pool is busy and the caller runs them alone).
    fn share(&self, count: usize, units: usize, task: &(dyn Fn(usize) -> usize + Sync)) {
        let alone = |task: &dyn Fn(usize) -> usize| {
            for i in 0..count {
                task(i);
            }
        };
        if count <= 1 || self.threads <= 1 || count > u32::MAX as usize {
            return alone(task);
        }
        let busy = match self.busy.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return alone(task),
        };
        // SAFETY: only the lifetime is erased; `TaskRef` says why that is sound.
        let task = TaskRef(unsafe {
            std::mem::transmute::<
                *const (dyn Fn(usize) -> usize + Sync + '_),
                *const (dyn Fn(usize) -> usize + Sync + 'static),
            >(task)
        });
        let shared = &self.shared;
        shared.done.store(0, Ordering::Release);
        shared.panicked.store(false, Ordering::Relaxed);
        let offer = {
            let mut offer = shared.offer.lock().unwrap_or_else(PoisonError::into_inner);
            // Epoch 0 means "nothing offered" to a worker that has seen nothing yet.
            offer.epoch = offer.epoch.wrapping_add(1).max(1);
            (offer.task, offer.count) = (Some(task), count);
            shared
                .claim
                .store(u64::from(offer.epoch) << 32, Ordering::Release);
            *offer
        };
        // A worker counted as sleeping after this read saw the new epoch under the lock, and
        // does not sleep.
        if offer.sleeping > 0 {
            shared.wake.notify_all();
        }
        shared.offered.fetch_add(units as u64, Ordering::Relaxed);
        shared.work(offer, false);
        let mut spins = 0u32;
        while shared.done.load(Ordering::Acquire) < count {
            spins = spins.saturating_add(1);
            if spins < SPINS {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        drop(busy);
        if shared.panicked.load(Ordering::Relaxed) {
            panic!("a task of the thread pool panicked");
        }
    }

    /// Runs `task` over `0..len` split into ranges of at least `grain` items, up to
    /// [`RANGES_PER_THREAD`] per thread so that the threads finish close together.
    ///
    /// The ranges are dealt out in one contiguous lane per thread, which the thread that takes
    /// it runs front to back; a thread whose lane is done takes ranges from the back of the
    /// others'. Taken from one shared counter, each thread's ranges were scattered through
    /// the weights, and every range cost its thread a jump in memory (a new stream for the
    /// prefetcher to find): SmolLM2's decode on two threads was no faster than on one in
    /// Chromium, and is 1.4x faster in lanes (bench/NOTES.md, "Ranges in lanes").
    pub fn for_each_range(&self, len: usize, grain: usize, task: impl Fn(Range<usize>) + Sync) {
        let parts = (len / grain.max(1)).clamp(1, RANGES_PER_THREAD * self.threads);
        let start = cuts(len, parts);
        let lanes = Lanes::new(parts, self.threads.min(parts));
        self.share(lanes.count(), parts, &|lane| {
            lanes.drain(lane, |i| task(start(i)..start(i + 1)))
        });
    }
}

/// Where part `i` of `len` items cut into `parts` near-equal parts starts (part `parts` starting
/// at `len`): the first `len % parts` parts take one item more.
fn cuts(len: usize, parts: usize) -> impl Fn(usize) -> usize {
    let (size, extra) = (len / parts, len % parts);
    move |i| i * size + i.min(extra)
}

/// Ranges `0..parts` dealt out in contiguous lanes: each lane's first and end range, packed
/// in one atomic so that its owner (taking from the front) and thieves (from the back) never
/// take the same range.
struct Lanes(Vec<Line<AtomicU64>>);

impl Lanes {
    fn new(parts: usize, lanes: usize) -> Self {
        let start = cuts(parts, lanes);
        let bound = |i: usize| start(i) as u64;
        Lanes(
            (0..lanes)
                .map(|i| Line(AtomicU64::new(bound(i) << 32 | bound(i + 1))))
                .collect(),
        )
    }

    fn count(&self) -> usize {
        self.0.len()
    }

    /// Runs `lane`'s ranges from its front, then the others' from their backs; returns how
    /// many it ran.
    fn drain(&self, lane: usize, run: impl Fn(usize)) -> usize {
        let mut ran = 0;
        while let Some(i) = self.take(lane, true) {
            run(i);
            ran += 1;
        }
        for other in (1..self.count()).map(|k| (lane + k) % self.count()) {
            while let Some(i) = self.take(other, false) {
                run(i);
                ran += 1;
            }
        }
        ran
    }

    /// The next range of `lane`, from its front or its back; `None` when it has none left.
    fn take(&self, lane: usize, front: bool) -> Option<usize> {
        let bounds = &self.0[lane];
        let mut current = bounds.load(Ordering::Relaxed);
        loop {
            let (first, end) = (current >> 32, current & u64::from(u32::MAX));
            if first >= end {
                return None;
            }
            let (next, taken) = if front {
                ((first + 1) << 32 | end, first)
            } else {
                (first << 32 | (end - 1), end - 1)
            };
            match bounds.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Some(taken as usize),
                Err(seen) => current = seen,
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared
            .offer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stop = true;
        self.shared.wake.notify_all();
    }
}

static GLOBAL: OnceLock<Pool> = OnceLock::new();

/// Starts the process's pool, which the matmuls use from then on: `threads` in all, the
/// workers run by `spawn`.
pub fn start<E: std::fmt::Display>(
    threads: usize,
    spawn: impl FnMut(Worker) -> Result<(), E>,
) -> Result<&'static Pool, PoolError> {
    if let Some(pool) = GLOBAL.get() {
        return Err(PoolError::AlreadyStarted {
            threads: pool.threads,
        });
    }
    // Two threads starting pools at once: the one that loses drops its own, which stops its
    // workers, and reports the winner's.
    GLOBAL
        .set(Pool::new(threads, spawn)?)
        .map_err(|_| PoolError::AlreadyStarted {
            threads: GLOBAL.get().map_or(threads, Pool::threads),
        })?;
    Ok(GLOBAL.get().expect("set just above"))
}

/// [`start`] with `std::thread`s.
#[cfg(not(target_arch = "wasm32"))]
pub fn start_native(threads: usize) -> Result<&'static Pool, PoolError> {
    start(threads, |worker| {
        std::thread::Builder::new()
            .name("mimir-kernels".into())
            .spawn(move || worker.run())
            .map(drop)
    })
}

/// The work of the pool [`start`] started, if it did.
pub fn global_work() -> Option<PoolWork> {
    global().map(Pool::work)
}

/// The pool [`start`] started, if it did.
pub(crate) fn global() -> Option<&'static Pool> {
    GLOBAL.get()
}

/// [`Pool::for_each_range`] on `pool`, or `task(0..len)` without one.
pub(crate) fn for_each_range(
    pool: Option<&Pool>,
    len: usize,
    grain: usize,
    task: impl Fn(Range<usize>) + Sync,
) {
    match pool {
        Some(pool) => pool.for_each_range(len, grain, task),
        None => task(0..len),
    }
}

/// A slice that tasks of one [`Pool::run`] write to at disjoint places.
pub(crate) struct Disjoint<'a, T> {
    ptr: *mut T,
    len: usize,
    _slice: std::marker::PhantomData<&'a mut [T]>,
}

// SAFETY: `Disjoint` only hands out what its (unsafe) caller promises no other thread touches.
unsafe impl<T: Send> Sync for Disjoint<'_, T> {}

impl<'a, T> Disjoint<'a, T> {
    pub(crate) fn new(slice: &'a mut [T]) -> Self {
        Disjoint {
            ptr: slice.as_mut_ptr(),
            len: slice.len(),
            _slice: std::marker::PhantomData,
        }
    }

    /// The items `range`.
    ///
    /// # Safety
    /// No other thread may use any of them while the returned slice lives.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice(&self, range: Range<usize>) -> &mut [T] {
        assert!(
            range.start <= range.end && range.end <= self.len,
            "{range:?} out of {}",
            self.len
        );
        std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len())
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn native(threads: usize) -> Pool {
        Pool::new(threads, |worker| {
            std::thread::Builder::new()
                .spawn(move || worker.run())
                .map(drop)
        })
        .unwrap()
    }

    #[test]
    fn every_task_runs_once_in_every_offer() {
        let pool = native(3);
        for count in [0, 1, 2, 7, 64, 1000] {
            for _ in 0..200 {
                let hits: Vec<AtomicUsize> = (0..count).map(|_| AtomicUsize::new(0)).collect();
                pool.run(count, &|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
            }
        }
    }

    #[test]
    fn workers_take_tasks() {
        let pool = native(2);
        let caller = std::thread::current().id();
        // Tasks long enough that the caller cannot take them all before the worker wakes;
        // returns how many ran elsewhere.
        let elsewhere = |share: &dyn Fn(&(dyn Fn() + Sync))| {
            let elsewhere = AtomicUsize::new(0);
            share(&|| {
                std::thread::sleep(std::time::Duration::from_millis(1));
                if std::thread::current().id() != caller {
                    elsewhere.fetch_add(1, Ordering::Relaxed);
                }
            });
            elsewhere.load(Ordering::Relaxed) as u64
        };
        let by_tasks = elsewhere(&|task| pool.run(64, &|_| task()));
        assert!(by_tasks > 0);
        // The pool's account agrees; a run of one task is not shared out.
        let work = |tasks, by_workers| PoolWork { tasks, by_workers };
        assert_eq!(pool.work(), work(64, by_tasks));
        pool.run(1, &|_| ());
        assert_eq!(pool.work().tasks, 64);

        // Ranges count one by one, however the lanes were shared.
        let by_ranges = elsewhere(&|task| pool.for_each_range(40, 2, |_| task()));
        assert!(by_ranges > 0);
        assert_eq!(pool.work(), work(64 + 20, by_tasks + by_ranges));
    }

    #[test]
    fn ranges_cover_the_length_in_order() {
        let pool = native(2);
        for (len, grain) in [(0, 1), (1, 1), (10, 3), (144, 4), (1000, 1), (5, 100)] {
            let mut seen = vec![0u8; len];
            let out = Disjoint::new(&mut seen);
            pool.for_each_range(len, grain, |range| {
                assert!(range.len() >= grain.min(len) || len == 0);
                // SAFETY: the ranges are disjoint.
                for v in unsafe { out.slice(range) } {
                    *v += 1;
                }
            });
            assert!(seen.iter().all(|&v| v == 1), "{len} / {grain}: {seen:?}");
        }
    }

    #[test]
    fn ranges_are_cut_by_grain_up_to_a_cap_per_thread() {
        let pool = native(2);
        for (len, grain, parts) in [(576, 107, 5), (576, 200, 2), (576, 300, 1), (7, 1, 7)] {
            let seen = AtomicUsize::new(0);
            pool.for_each_range(len, grain, |_| {
                seen.fetch_add(1, Ordering::Relaxed);
            });
            assert_eq!(seen.load(Ordering::Relaxed), parts, "{len} / {grain}");
        }
        let seen = AtomicUsize::new(0);
        pool.for_each_range(10_000, 1, |_| {
            seen.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(seen.load(Ordering::Relaxed), 2 * RANGES_PER_THREAD);
    }

    #[test]
    fn a_lane_runs_its_own_ranges_in_order_then_the_others_from_their_backs() {
        let lanes = Lanes::new(10, 3);
        assert_eq!(lanes.count(), 3);
        let order = Mutex::new(Vec::new());
        lanes.drain(1, |i| order.lock().unwrap().push(i));
        // Lane 1 holds 4..7, lane 2 7..10 and lane 0 0..4 (the first takes the extra range).
        assert_eq!(*order.lock().unwrap(), [4, 5, 6, 9, 8, 7, 3, 2, 1, 0]);
        assert_eq!(lanes.take(0, true), None);
        assert_eq!(lanes.take(2, false), None);
    }

    #[test]
    fn lanes_drained_side_by_side_run_every_range_once() {
        for (parts, lanes) in [(1, 1), (7, 2), (64, 3), (1000, 8)] {
            let lanes = Lanes::new(parts, lanes);
            let hits: Vec<AtomicUsize> = (0..parts).map(|_| AtomicUsize::new(0)).collect();
            std::thread::scope(|scope| {
                for lane in 0..lanes.count() {
                    let (lanes, hits) = (&lanes, &hits);
                    scope.spawn(move || {
                        lanes.drain(lane, |i| {
                            hits[i].fetch_add(1, Ordering::Relaxed);
                        })
                    });
                }
            });
            assert!(
                hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                "{parts}"
            );
        }
    }

    #[test]
    fn a_panicking_task_panics_the_caller_and_the_pool_goes_on() {
        let pool = native(2);
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            pool.run(8, &|i| assert_ne!(i, 5, "task five fails"));
        }));
        assert!(result.is_err());
        let hits = AtomicUsize::new(0);
        pool.run(8, &|_| {
            hits.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(hits.load(Ordering::Relaxed), 8);
    }

    #[test]
    fn a_busy_pool_runs_a_second_callers_tasks_inline() {
        let pool = native(2);
        let inner = AtomicUsize::new(0);
        pool.run(2, &|_| {
            pool.run(4, &|_| {
                inner.fetch_add(1, Ordering::Relaxed);
            });
        });
        assert_eq!(inner.load(Ordering::Relaxed), 8);
    }

    #[test]
    fn zero_threads_is_an_error() {
        let spawn = |_: Worker| Ok::<(), String>(());
        assert_eq!(Pool::new(0, spawn).err(), Some(PoolError::NoThreads(0)));
    }
}
