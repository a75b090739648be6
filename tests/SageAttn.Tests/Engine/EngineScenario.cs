using SageAttn.Backend.Engine;
using TorchSharp;
using static TorchSharp.torch;

namespace SageAttn.Tests.Engine;

/// <summary>
/// Drives a backend through engine steps the way an engine does (ForwardMeta.Create → InitAttentionMetadata →
/// ForwardMixed per layer) on fresh random qkv, and keeps every request's history of qkv rows (as the backend saw
/// them, after rounding to the dtype) so a float64 reference can recompute any step from scratch.
/// </summary>
public sealed class EngineScenario : IDisposable
{
    private readonly Dictionary<(int Layer, int Id), List<double[]>> _history = [];
    private readonly Dictionary<int, int> _cached = [];
    private readonly torch.Generator _random;

    /// <param name="backend">The backend under test.</param>
    /// <param name="maxNumBlocks">Cache blocks.</param>
    /// <param name="device">Where the cache and qkv live.</param>
    /// <param name="random">The scenario's own generator (not torch's global one, which tests running in parallel share).</param>
    public EngineScenario(AttentionBackend backend, int maxNumBlocks, Device device, torch.Generator random)
    {
        _random = random;
        Backend = backend;
        Device = device;
        Cache = new PagedKvCache(backend, maxNumBlocks, device);
        Rope = RotaryTable.For(backend.Config, device);
    }

    public AttentionBackend Backend { get; }
    public Device Device { get; }
    public PagedKvCache Cache { get; }
    public RotaryTable Rope { get; }
    public AttentionBackendConfig Config => Backend.Config;

    /// <summary>Random packed qkv [T, W] in the config's dtype on the device (K with outlier channels, as real keys have).</summary>
    public static Tensor RandomQkv(torch.Generator random, AttentionBackendConfig config, int tokens, Device device)
    {
        using var scope = torch.NewDisposeScope();
        int h = config.NumHeads, hkv = config.KvHeads, d = config.HeadDim;
        var qkv = torch.randn([tokens, config.QkvWidth], ScalarType.Float32, generator: random);
        var offsets = torch.randn([hkv * d], ScalarType.Float32, generator: random) * 2;
        qkv.narrow(1, h * d, hkv * d).add_(offsets);
        return scope.MoveToOuter(qkv.to(config.DType).to(device));
    }

    /// <summary>
    /// Runs one step: each (id, new tokens) continues request id after its cached tokens. Each layer gets its own
    /// random qkv (the layers' caches must not mix). Returns the qkv and output of every layer, on the device.
    /// </summary>
    public (Tensor[] Qkv, Tensor[] Output, RequestSlot[] Requests) Step(params (int Id, int NewTokens)[] requests)
    {
        int tokens = requests.Sum(r => r.NewTokens);
        var qkvs = Enumerable.Range(0, Config.NumLayers).Select(_ => RandomQkv(_random, Config, tokens, Device)).ToArray();
        return StepWith(qkvs, requests);
    }

    /// <summary>One step on given qkv tensors (one per layer), e.g. those another backend's scenario just ran.</summary>
    public (Tensor[] Qkv, Tensor[] Output, RequestSlot[] Requests) StepWith(Tensor[] qkvs, params (int Id, int NewTokens)[] requests)
    {
        var slots = requests.Select(r => new RequestSlot(r.Id, _cached.GetValueOrDefault(r.Id), r.NewTokens)).ToArray();
        var outputs = new Tensor[Config.NumLayers];
        using (var meta = ForwardMeta.Create(slots, Cache, Rope))
        {
            Backend.InitAttentionMetadata(meta);
            for (int layer = 0; layer < Config.NumLayers; layer++)
                outputs[layer] = Backend.ForwardMixed(qkvs[layer], layer, meta);
        }

        for (int layer = 0; layer < Config.NumLayers; layer++)
        {
            using var host = qkvs[layer].to(DeviceType.CPU).to(ScalarType.Float64);
            var rows = host.data<double>().ToArray();
            int row = 0;
            foreach (var s in slots)
            {
                var list = _history.TryGetValue((layer, s.RequestId), out var l) ? l : _history[(layer, s.RequestId)] = [];
                for (int i = 0; i < s.NewTokens; i++, row++)
                    list.Add(rows.AsSpan(row * Config.QkvWidth, Config.QkvWidth).ToArray());
            }
        }

        foreach (var s in slots)
            _cached[s.RequestId] = s.TotalTokens;
        return (qkvs, outputs, slots);
    }

    /// <summary>The float64 reference output [T, H·D] of <paramref name="layer"/> for a step just run.</summary>
    public Tensor Reference(RequestSlot[] requests, int layer)
    {
        var rows = new List<double>();
        foreach (var s in requests)
            for (int i = 0; i < s.NewTokens; i++)
                rows.AddRange(EngineReference.AttendOne(_history[(layer, s.RequestId)], s.CachedTokens + i, Config));
        int tokens = requests.Sum(s => s.NewTokens);
        return torch.tensor(rows.ToArray(), [tokens, Config.NumHeads * Config.HeadDim], ScalarType.Float64);
    }

    public void Dispose()
    {
        Cache.Dispose();
        Rope.Dispose();
    }
}
