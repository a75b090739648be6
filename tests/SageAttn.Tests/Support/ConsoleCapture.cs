namespace SageAttn.Tests.Support;

/// <summary>Runs a command with the process's standard output or error redirected, and returns what it wrote.</summary>
public static class ConsoleCapture
{
    /// <summary>Runs <paramref name="run"/> with <see cref="Console.Out"/> captured; the previous writer is restored.</summary>
    public static (T Result, string Text) Out<T>(Func<T> run) => Capture(run, () => Console.Out, Console.SetOut);

    /// <summary>Runs <paramref name="run"/> with <see cref="Console.Error"/> captured; the previous writer is restored.</summary>
    public static (T Result, string Text) Error<T>(Func<T> run) => Capture(run, () => Console.Error, Console.SetError);

    private static (T Result, string Text) Capture<T>(Func<T> run, Func<TextWriter> current, Action<TextWriter> set)
    {
        ArgumentNullException.ThrowIfNull(run);
        var previous = current();
        using var writer = new StringWriter();
        set(writer);
        try
        {
            return (run(), writer.ToString());
        }
        finally
        {
            set(previous);
        }
    }
}
