namespace SageAttn.Cli.Bench;

/// <summary>
/// Progress on stderr: on a terminal one line redrawn in place; otherwise (a log file, CI) a plain line at
/// every tenth of the work, so a captured log has no carriage-return flicker.
/// </summary>
public sealed class ProgressBar
{
    private const int Width = 30;
    private readonly TextWriter _writer;
    private readonly bool _interactive;
    private readonly int _total;
    private readonly DateTime _start = DateTime.UtcNow;
    private int _done;
    private int _lastTenth = -1;
    private string _label = string.Empty;
    private bool _drawn;

    /// <summary>A bar over <paramref name="total"/> steps writing to <paramref name="writer"/>.</summary>
    /// <param name="interactive">Redraw in place (a terminal); false prints plain lines.</param>
    public ProgressBar(TextWriter writer, int total, bool interactive)
    {
        _writer = writer ?? throw new ArgumentNullException(nameof(writer));
        _total = Math.Max(1, total);
        _interactive = interactive;
    }

    /// <summary>Names the step now running and redraws.</summary>
    public void Begin(string label)
    {
        _label = label ?? string.Empty;
        if (_interactive) Draw();
    }

    /// <summary>Marks one step done.</summary>
    public void Step()
    {
        _done = Math.Min(_total, _done + 1);
        if (_interactive)
        {
            Draw();
            return;
        }
        int tenth = _done * 10 / _total;
        if (tenth != _lastTenth)
        {
            _lastTenth = tenth;
            _writer.WriteLine($"progress {_done}/{_total} ({tenth * 10}%) {Eta()} {_label}".TrimEnd());
            _writer.Flush();
        }
    }

    /// <summary>Writes a line to <paramref name="output"/> (the results table) without tearing the bar.</summary>
    public void WriteAbove(TextWriter output, string line)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (_interactive && _drawn)
            _writer.Write("\r" + new string(' ', Math.Max(0, SafeWindowWidth() - 1)) + "\r");
        output.WriteLine(line);
        output.Flush();
        if (_interactive) Draw();
    }

    /// <summary>Ends the bar's line.</summary>
    public void Finish()
    {
        if (_interactive && _drawn)
            _writer.WriteLine();
        _drawn = false;
    }

    private void Draw()
    {
        int filled = _done * Width / _total;
        string line = $"[{new string('#', filled)}{new string('.', Width - filled)}] {_done}/{_total} {Eta()} {_label}";
        int width = SafeWindowWidth();
        if (line.Length > width - 1)
            line = line[..Math.Max(0, width - 1)];
        _writer.Write("\r" + line.PadRight(Math.Max(0, width - 1)));
        _writer.Flush();
        _drawn = true;
    }

    private string Eta()
    {
        if (_done == 0) return "eta --";
        var left = TimeSpan.FromSeconds((DateTime.UtcNow - _start).TotalSeconds / _done * (_total - _done));
        return $"eta {(int)left.TotalMinutes}m{left.Seconds:D2}s";
    }

    private static int SafeWindowWidth()
    {
        try
        {
            return Console.WindowWidth > 20 ? Console.WindowWidth : 100;
        }
        catch (IOException)
        {
            return 100;
        }
    }
}
