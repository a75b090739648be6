using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Backend.Engine;

/// <summary>
/// Per-step data of <see cref="SageAttentionBackend"/>: the step split into its prefill requests (varlen attention
/// over packed sequences) and its decode requests (one query each against the paged cache), with the token indices
/// that route q rows to each part and the outputs back, and each part's lengths, cu_seqlens and block tables.
/// </summary>
/// <remarks>
/// The host arrays are the lengths the scheduler already knows; the tensors are on the cache's device. Built once per
/// step so a layer only indexes and launches. The decode key rows exist only for the interim dense decode path
/// (gather, then attend); the paged decode kernel reads <see cref="DecodeBlockTables"/> directly.
/// </remarks>
public sealed class SageAttentionMetadata : PagedAttentionMetadata
{
    /// <summary>Builds the step's data on the cache's device.</summary>
    public SageAttentionMetadata(ForwardMeta meta) : base(meta)
    {
        var device = meta.Cache.Device;
        PrefillBatch = Enumerable.Range(0, meta.BatchSize).Where(b => !meta.Requests[b].IsDecode).ToArray();
        DecodeBatch = Enumerable.Range(0, meta.BatchSize).Where(b => meta.Requests[b].IsDecode).ToArray();

        PrefillQueryStarts = PrefixSums(PrefillBatch.Select(b => meta.Requests[b].NewTokens));
        PrefillKeyStarts = PrefixSums(PrefillBatch.Select(b => meta.Requests[b].TotalTokens));
        PrefillMaxSeqLenQ = PrefillBatch.Select(b => meta.Requests[b].NewTokens).DefaultIfEmpty(0).Max();
        PrefillMaxSeqLenK = PrefillBatch.Select(b => meta.Requests[b].TotalTokens).DefaultIfEmpty(0).Max();
        DecodeSeqLensHost = DecodeBatch.Select(b => meta.Requests[b].TotalTokens).ToArray();
        DecodeKeyStarts = PrefixSums(DecodeSeqLensHost);
        DecodeMaxSeqLen = DecodeSeqLensHost.DefaultIfEmpty(0).Max();

        if (PrefillBatch.Length > 0)
        {
            PrefillTokens = torch.tensor(TokenRows(meta, PrefillBatch), ScalarType.Int64, device);
            PrefillCuSeqLensQ = torch.tensor(PrefillQueryStarts, ScalarType.Int32, device);
            PrefillCuSeqLensK = torch.tensor(PrefillKeyStarts, ScalarType.Int32, device);
            PrefillKeyRows = torch.tensor(KeyRowsOf(meta, PrefillBatch), ScalarType.Int64, device);
        }

        if (DecodeBatch.Length > 0)
        {
            DecodeTokens = torch.tensor(TokenRows(meta, DecodeBatch), ScalarType.Int64, device);
            DecodeSeqLens = torch.tensor(DecodeSeqLensHost, ScalarType.Int32, device);
            using var batchIndex = torch.tensor(DecodeBatch.Select(b => (long)b).ToArray(), ScalarType.Int64, device);
            DecodeBlockTables = meta.BlockTables.index_select(0, batchIndex);
            DecodeKeyRows = torch.tensor(KeyRowsOf(meta, DecodeBatch), ScalarType.Int64, device);
        }
    }

    /// <summary>Batch indices of the prefill requests, in batch order.</summary>
    public int[] PrefillBatch { get; }

    /// <summary>Batch indices of the decode requests, in batch order.</summary>
    public int[] DecodeBatch { get; }

    /// <summary>True when every request of the step is a prefill (the q rows need no routing).</summary>
    public bool AllPrefill => DecodeBatch.Length == 0;

    /// <summary>True when every request of the step is a decode.</summary>
    public bool AllDecode => PrefillBatch.Length == 0;

    /// <summary>Int64 [Tp]: rows of the step's tokens that belong to prefill requests (null without prefills).</summary>
    public Tensor? PrefillTokens { get; }

    /// <summary>Host cu_seqlens of the prefill requests' new tokens (length prefills + 1).</summary>
    public int[] PrefillQueryStarts { get; }

    /// <summary>Host cu_seqlens of the prefill requests' keys (cached + new).</summary>
    public int[] PrefillKeyStarts { get; }

    /// <summary>Int32 [prefills + 1] on the device: <see cref="PrefillQueryStarts"/> (cu_seqlens_q of the varlen kernel).</summary>
    public Tensor? PrefillCuSeqLensQ { get; }

    /// <summary>Int32 [prefills + 1] on the device: <see cref="PrefillKeyStarts"/> (cu_seqlens_k).</summary>
    public Tensor? PrefillCuSeqLensK { get; }

    /// <summary>Most new tokens of one prefill request (max_seqlen_q).</summary>
    public int PrefillMaxSeqLenQ { get; }

    /// <summary>Most keys of one prefill request (max_seqlen_k).</summary>
    public int PrefillMaxSeqLenK { get; }

    /// <summary>Int64 [Σ prefill keys·Hkv]: cache rows that gather the prefill requests' keys packed (prefix then new, per request).</summary>
    public Tensor? PrefillKeyRows { get; }

    /// <summary>Int64 [Bd]: rows of the step's tokens that belong to decode requests (null without decodes).</summary>
    public Tensor? DecodeTokens { get; }

    /// <summary>Host keys per decode request (cached + 1).</summary>
    public int[] DecodeSeqLensHost { get; }

    /// <summary>Int32 [Bd] on the device: <see cref="DecodeSeqLensHost"/> (seq_lens of the paged decode kernel).</summary>
    public Tensor? DecodeSeqLens { get; }

    /// <summary>Int32 [Bd, MaxBlocksPerRequest]: the decode requests' rows of <see cref="ForwardMeta.BlockTables"/>.</summary>
    public Tensor? DecodeBlockTables { get; }

    /// <summary>Most keys of one decode request (max_seq_len).</summary>
    public int DecodeMaxSeqLen { get; }

    /// <summary>Host prefix sums of <see cref="DecodeSeqLensHost"/> (splits the gathered decode keys).</summary>
    public int[] DecodeKeyStarts { get; }

    /// <summary>Int64 [Σ decode keys·Hkv]: cache rows of the decode requests' keys (interim dense decode path).</summary>
    public Tensor? DecodeKeyRows { get; }

    private static long[] TokenRows(ForwardMeta meta, int[] batchIndices)
    {
        var rows = new List<long>();
        foreach (int b in batchIndices)
            for (int i = 0; i < meta.Requests[b].NewTokens; i++)
                rows.Add(meta.QueryStarts[b] + i);
        return [.. rows];
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            PrefillTokens?.Dispose();
            PrefillCuSeqLensQ?.Dispose();
            PrefillCuSeqLensK?.Dispose();
            PrefillKeyRows?.Dispose();
            DecodeTokens?.Dispose();
            DecodeSeqLens?.Dispose();
            DecodeBlockTables?.Dispose();
            DecodeKeyRows?.Dispose();
        }

        base.Dispose(disposing);
    }
}
