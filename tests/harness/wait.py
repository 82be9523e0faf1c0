"""Polling helpers: wait for a condition with a deadline instead of sleeping."""
import time


class DeadlineExceeded(AssertionError):
    pass


def wait_until(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Call predicate() until it returns a truthy value; return that value.

    Raises DeadlineExceeded (an AssertionError) after `timeout` seconds.
    Exceptions raised by predicate propagate."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise DeadlineExceeded("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def wait_event(event, timeout=10.0, what="event"):
    """Wait on a threading.Event-like object; assert it was set."""
    if not event.wait(timeout):
        raise DeadlineExceeded("timed out after %.1fs waiting for %s" % (timeout, what))
    return True
