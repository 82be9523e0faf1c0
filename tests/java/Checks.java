import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * The line protocol shared by the Java test programs and tests/harness/programs.py.
 *
 * <p>stdout, one line each:
 * <pre>
 *   ok NAME              a check passed
 *   FAIL NAME: REASON    a check failed (stack trace on stderr)
 *   info TEXT            something worth showing in a failure report
 *   ask WHAT             the program needs the driver (pytest) to do WHAT, e.g. cut the
 *                        proxy; it blocks until the driver writes "ok" to its stdin
 *   done failed=N        the end; the exit status is 0 when N is 0, else 1
 * </pre>
 * A check is a piece of code that throws when what it observed is wrong; checks run in
 * order, and a failing one does not stop the others.
 */
final class Checks {
    interface Body {
        void run() throws Exception;
    }

    private static final BufferedReader STDIN =
        new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));

    private final List<String> failed = new ArrayList<>();

    void run(String name, Body body) {
        try {
            body.run();
            System.out.println("ok " + name);
        } catch (Throwable t) {
            failed.add(name);
            String msg = t.getMessage() == null ? "" : t.getMessage().replace('\n', ' ');
            String what = t instanceof AssertionError ? msg : t.getClass().getName() + ": " + msg;
            System.out.println("FAIL " + name + ": " + what);
            System.err.println("---- check " + name + " failed:");
            t.printStackTrace(System.err);
        }
        System.out.flush();
    }

    /** Prints the summary line and returns the exit status. */
    int finish() {
        System.out.println("done failed=" + failed.size() + (failed.isEmpty() ? "" : " " + failed));
        System.out.flush();
        return failed.isEmpty() ? 0 : 1;
    }

    static void info(String text) {
        System.out.println("info " + text.replace('\n', ' '));
        System.out.flush();
    }

    /** Asks the driver to do something (e.g. "cut-hold", "release") and waits for "ok". */
    static void ask(String what) throws IOException {
        System.out.println("ask " + what);
        System.out.flush();
        String reply = STDIN.readLine();
        if (!"ok".equals(reply)) {
            throw new IllegalStateException("driver answered " + reply + " to 'ask " + what + "'");
        }
    }

    static void check(boolean condition, String format, Object... args) {
        if (!condition) {
            throw new AssertionError(String.format(format, args));
        }
    }

    static void equal(Object expected, Object actual, String what) {
        if (!Objects.equals(expected, actual)) {
            throw new AssertionError(what + ": expected <" + expected + "> but got <" + actual + ">");
        }
    }

    interface Call {
        void run() throws Exception;
    }

    /** Runs `call` and requires it to throw an exception of class `expected`. */
    static void fails(Class<? extends Throwable> expected, String what, Call call) {
        try {
            call.run();
        } catch (Throwable t) {
            if (expected.isInstance(t)) {
                return;
            }
            throw new AssertionError(what + ": expected " + expected.getSimpleName() + " but got " + t, t);
        }
        throw new AssertionError(what + ": expected " + expected.getSimpleName() + " but it succeeded");
    }

    private Checks() {
    }

    static Checks create() {
        return new Checks();
    }
}
