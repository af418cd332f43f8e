// A reader that goes away (`qumra vm console X | head`) closes our stdout: like every Unix tool, the
// command then ends quietly with status 0 instead of dying on EPIPE with a stack trace.
export function endQuietlyWhenStdoutCloses(stream: NodeJS.WriteStream = process.stdout): void {
  stream.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(0);
    throw err;
  });
}
