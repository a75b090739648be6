namespace SageAttn.Cli;

/// <summary>Minimal "--name value" / "--flag" option reading.</summary>
internal static class CliArgs
{
    public static string? Value(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        if (i < 0) return null;
        if (i + 1 >= args.Length) throw new ArgumentException($"{name} needs a value.", name);
        return args[i + 1];
    }

    public static bool Flag(string[] args, string name) => Array.IndexOf(args, name) >= 0;

    public static int[] Ints(string[] args, string name, int[] fallback) =>
        Value(args, name) is { } text ? text.Split(',').Select(s => int.Parse(s, System.Globalization.CultureInfo.InvariantCulture)).ToArray() : fallback;

    /// <summary>An enum value by name (case-insensitive); anything else throws naming <paramref name="option"/> and the names it takes.</summary>
    public static T ParseEnum<T>(string text, string option)
        where T : struct, Enum =>
        Enum.TryParse<T>(text.Trim(), ignoreCase: true, out var value) && Enum.IsDefined(value)
            ? value
            : throw new ArgumentException($"{option} takes one of {string.Join(", ", Enum.GetNames<T>())}, got {text}.", option);
}
