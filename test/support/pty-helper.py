#!/usr/bin/env python3
# A pseudo-terminal for the test double of a zone (child-process-zone.ts): runs argv on a new pty
# of COLS x ROWS, relays stdin -> pty and pty -> stdout, and reads "resize C R" / "kill N" lines on
# fd 3. Exits as the child did (re-raising its signal), like a zone's tty process would end.
import fcntl, os, pty, select, signal, struct, sys, termios

cols, rows = int(sys.argv[1]), int(sys.argv[2])
argv = sys.argv[4:]
winsize = lambda c, r: struct.pack('HHHH', r, c, 0, 0)
pid, master = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, winsize(cols, rows))
    os.execvp(argv[0], argv)

fds = [0, master, 3]
control = b''
while True:
    try:
        ready, _, _ = select.select(fds, [], [])
    except InterruptedError:
        continue
    if master in ready:
        try:
            data = os.read(master, 65536)
        except OSError:
            data = b''
        if not data:
            break
        os.write(1, data)
    if 0 in ready:
        data = os.read(0, 65536)
        if data:
            os.write(master, data)
        else:
            os.write(master, b'\x04')
            fds.remove(0)
    if 3 in ready:
        data = os.read(3, 4096)
        if not data:
            fds.remove(3)
            continue
        control += data
        while b'\n' in control:
            line, control = control.split(b'\n', 1)
            words = line.decode().split()
            if words[0] == 'resize':
                fcntl.ioctl(master, termios.TIOCSWINSZ, winsize(int(words[1]), int(words[2])))
            elif words[0] == 'kill':
                try:
                    os.kill(pid, int(words[1]))
                except ProcessLookupError:
                    pass

_, status = os.waitpid(pid, 0)
if os.WIFSIGNALED(status):
    sig = os.WTERMSIG(status)
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)
sys.exit(os.WEXITSTATUS(status))
