using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.InteropServices;
using ILGPU.Runtime;

namespace SageAttn.Kernels.Runtime;

/// <summary>
/// Loads PTX from <see cref="PtxCompiler"/> into the current CUDA context and launches it with
/// <c>cuLaunchKernel</c> on a caller-given stream, never synchronizing.
/// </summary>
/// <remarks>
/// <para>
/// Context: modules are loaded into whatever context is current on the calling thread — with
/// TorchSharp that is the device's primary context, made current by libtorch's first CUDA op.
/// <see cref="CudaDriver.EnsureContext"/> retains and binds the primary context when none is
/// current. Modules are cached per (context, compiled PTX key); a module is only valid in the
/// context it was loaded in, so the context handle is part of the key.
/// </para>
/// <para>
/// Shared memory: launches asking for more than 48 KB of dynamic shared memory first raise the
/// function's <c>MAX_DYNAMIC_SHARED_SIZE_BYTES</c> attribute (ILGPU never does this).
/// </para>
/// <para>Thread safety: concurrent launches are allowed; module loads are serialized per key.</para>
/// </remarks>
public sealed unsafe class CudaKernelLauncher : IDisposable
{
    /// <summary>Dynamic shared memory a kernel gets without opting in (48 KB on every arch since sm_70).</summary>
    public const int DefaultDynamicSharedLimit = 48 * 1024;

    /// <summary><c>CU_JIT_INFO_LOG_BUFFER</c>.</summary>
    private const int JitInfoLogBuffer = 3;

    /// <summary><c>CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES</c>.</summary>
    private const int JitInfoLogBufferSize = 4;

    /// <summary><c>CU_JIT_ERROR_LOG_BUFFER</c>.</summary>
    private const int JitErrorLogBuffer = 5;

    /// <summary><c>CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES</c>.</summary>
    private const int JitErrorLogBufferSize = 6;

    /// <summary>Bytes reserved for each JIT log; ptxas messages are short.</summary>
    private const int JitLogBytes = 16 * 1024;

    private readonly PtxCompiler _compiler;
    private readonly bool _ownsCompiler;
    private readonly ConcurrentDictionary<(IntPtr Context, string Key), Lazy<LoadedKernel>> _modules = new();

    /// <summary>Creates a launcher with its own <see cref="PtxCompiler"/>.</summary>
    public CudaKernelLauncher()
        : this(new PtxCompiler(), ownsCompiler: true)
    {
    }

    /// <summary>Creates a launcher sharing <paramref name="compiler"/> (not disposed by the launcher).</summary>
    public CudaKernelLauncher(PtxCompiler compiler)
        : this(compiler, ownsCompiler: false)
    {
    }

    private CudaKernelLauncher(PtxCompiler compiler, bool ownsCompiler)
    {
        ArgumentNullException.ThrowIfNull(compiler);
        _compiler = compiler;
        _ownsCompiler = ownsCompiler;
    }

    /// <summary>The compiler this launcher uses.</summary>
    public PtxCompiler Compiler => _compiler;

    /// <summary>
    /// Compiles (cached) <paramref name="kernel"/> for the current device and loads it (cached)
    /// into the current context.
    /// </summary>
    /// <param name="kernel">Static explicitly grouped ILGPU kernel.</param>
    /// <param name="specializedValues">Values of its <c>SpecializedValue&lt;T&gt;</c> parameters, in order.</param>
    /// <param name="archSpecific">Emit <c>.target sm_XYa</c> (needed for wgmma on sm_90).</param>
    /// <param name="launchBounds">Optional .maxntid / .minnctapersm.</param>
    public LoadedKernel Load(
        MethodInfo kernel,
        IReadOnlyList<object>? specializedValues = null,
        bool archSpecific = false,
        KernelSpecialization? launchBounds = null)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        var context = CudaDriver.GetCurrentContext();
        if (context == IntPtr.Zero)
        {
            throw new InvalidOperationException(
                "No CUDA context is current on this thread: run a CUDA tensor op first or call CudaDriver.EnsureContext(device).");
        }

        var info = CudaDriver.GetDeviceInfo(CudaDriver.CurrentDevice());
        var target = PtxTarget.ForDevice(
            info.ComputeCapability,
            CudaDriver.DriverVersion(),
            archSpecific);
        var ptx = _compiler.Compile(kernel, target, specializedValues, launchBounds);
        return Load(ptx);
    }

    /// <summary>Loads already compiled PTX into the current context (cached by its key).</summary>
    /// <exception cref="CudaException">The PTX JIT failed; the message includes the JIT error log.</exception>
    public LoadedKernel Load(CompiledPtx ptx)
    {
        ArgumentNullException.ThrowIfNull(ptx);
        var context = CudaDriver.GetCurrentContext();
        if (context == IntPtr.Zero)
        {
            throw new InvalidOperationException(
                "No CUDA context is current on this thread: run a CUDA tensor op first or call CudaDriver.EnsureContext(device).");
        }

        var lazy = _modules.GetOrAdd((context, ptx.CacheKey), key => new Lazy<LoadedKernel>(
            () => LoadModule(key.Context, ptx),
            LazyThreadSafetyMode.ExecutionAndPublication));
        return lazy.Value;
    }

    /// <summary>
    /// Enqueues <paramref name="kernel"/> on <paramref name="stream"/> (0 = legacy default stream)
    /// and returns without synchronizing.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A launch dimension is not positive.</exception>
    /// <exception cref="CudaException">The launch failed; the message names kernel, grid, block and shared size.</exception>
    public void Launch(LoadedKernel kernel, in LaunchDimensions dims, KernelArgs args, IntPtr stream)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        ArgumentNullException.ThrowIfNull(args);
        dims.Validate();
        kernel.EnsureDynamicShared(dims.DynamicSharedBytes);
        int result = args.Launch(kernel.Function, dims, stream);
        CudaDriver.Check(result, $"launching {kernel.EntryName} ({dims}, {args.Count} parameters, stream 0x{stream:x})");
    }

    /// <summary>Unloads every cached module. Only call when no launch is in flight.</summary>
    public void Dispose()
    {
        foreach (var lazy in _modules.Values)
        {
            if (lazy.IsValueCreated)
            {
                lazy.Value.Unload();
            }
        }

        _modules.Clear();
        if (_ownsCompiler)
        {
            _compiler.Dispose();
        }
    }

    private static LoadedKernel LoadModule(IntPtr context, CompiledPtx ptx)
    {
        var image = CudaDriver.ToCString(ptx.Ptx);
        var errorLog = new byte[JitLogBytes];
        var infoLog = new byte[JitLogBytes];
        int* options = stackalloc int[4] { JitErrorLogBuffer, JitErrorLogBufferSize, JitInfoLogBuffer, JitInfoLogBufferSize };
        IntPtr* values = stackalloc IntPtr[4];
        IntPtr module;
        int result;
        fixed (byte* imagePointer = image)
        fixed (byte* errorPointer = errorLog)
        fixed (byte* infoPointer = infoLog)
        {
            values[0] = (IntPtr)errorPointer;
            values[1] = JitLogBytes;
            values[2] = (IntPtr)infoPointer;
            values[3] = JitLogBytes;
            result = CudaNative.cuModuleLoadDataEx(out module, imagePointer, 4, options, values);
        }

        CudaDriver.Check(
            result,
            $"loading the PTX module of {ptx.EntryName} ({ptx.Target.TargetName}, PTX ISA {ptx.Target.InstructionSet}) with the driver JIT",
            ReadLog(errorLog));

        var name = CudaDriver.ToCString(ptx.EntryName);
        IntPtr function;
        fixed (byte* namePointer = name)
        {
            result = CudaNative.cuModuleGetFunction(out function, module, namePointer);
        }

        if (result != 0)
        {
            CudaNative.cuModuleUnload(module);
            CudaDriver.Check(result, $"looking up entry '{ptx.EntryName}' in its loaded module");
        }

        return new LoadedKernel(ptx.EntryName, context, module, function, ReadLog(infoLog));
    }

    private static string ReadLog(byte[] log)
    {
        int end = Array.IndexOf(log, (byte)0);
        return System.Text.Encoding.UTF8.GetString(log, 0, end < 0 ? log.Length : end);
    }
}
