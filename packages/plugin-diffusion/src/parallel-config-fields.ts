/**
 * The keys of a diffusion stage's `engine_args.parallel_config` (upstream `DiffusionParallelConfig`,
 * `vllm_omni/diffusion/data.py`) with their types and defaults. One table feeds both the world-size
 * validator and the JSON schema, so the two cannot drift apart.
 */

/** How one `parallel_config` key is typed. */
export type DiffusionParallelFieldSpec =
  | {
      kind: 'int';
      /** Default when the key is absent; null = derived (see the description). */
      default: number | null;
      /** Smallest accepted value. */
      min: number;
      /** Exhaustive set of accepted values, when the range is not open-ended. */
      allowed?: readonly number[];
      /** Extra accepted values below `min` (e.g. `-1` = "derive it"). */
      sentinels?: readonly number[];
      /** Whether YAML `null` means "use the default". */
      nullable?: boolean;
      description: string;
    }
  | { kind: 'bool'; default: boolean; description: string }
  | { kind: 'enum'; default: string; values: readonly string[]; description: string };

/**
 * Every key upstream's parallel config accepts. Fields marked "(later upstream)" were added after
 * the reference revision; they are accepted so newer YAML files load, and only `allgather_degree`
 * changes the world size.
 */
export const DIFFUSION_PARALLEL_FIELDS = {
  pipeline_parallel_size: { kind: 'int', default: 1, min: 1, description: 'Number of pipeline-parallel stages.' },
  data_parallel_size: { kind: 'int', default: 1, min: 1, description: 'Number of data-parallel groups.' },
  tensor_parallel_size: { kind: 'int', default: 1, min: 1, description: 'Number of tensor-parallel ranks.' },
  enable_expert_parallel: {
    kind: 'bool',
    default: false,
    description: 'Expert parallelism for MoE layers (TP still shards the other layers); adds no ranks.',
  },
  sequence_parallel_size: {
    kind: 'int',
    default: null,
    min: 1,
    nullable: true,
    description: 'Sequence-parallel ranks; defaults to (and must equal) ulysses_degree × ring_degree.',
  },
  ulysses_degree: { kind: 'int', default: 1, min: 1, description: 'Ranks for Ulysses sequence parallelism.' },
  ring_degree: { kind: 'int', default: 1, min: 1, description: 'Ranks for ring sequence parallelism.' },
  ulysses_mode: {
    kind: 'enum',
    default: 'strict',
    values: ['strict', 'advanced_uaa'],
    description: 'Ulysses mode: "strict" (divisibility required) or "advanced_uaa" (uneven lengths/heads).',
  },
  cfg_parallel_size: {
    kind: 'int',
    default: 1,
    min: 1,
    allowed: [1, 2, 3],
    description: 'Ranks running the classifier-free-guidance passes in parallel (1, 2 or 3).',
  },
  vae_patch_parallel_size: {
    kind: 'int',
    default: 1,
    min: 1,
    description: 'Ranks for VAE patch/tile parallelism; reuses the DiT ranks, adds none.',
  },
  use_hsdp: { kind: 'bool', default: false, description: 'Hybrid sharded data parallel (FSDP2) weight sharding.' },
  hsdp_shard_size: {
    kind: 'int',
    default: -1,
    min: 1,
    sentinels: [-1],
    description: 'GPUs each HSDP replica group shards weights across; -1 = derive from the other parallelism.',
  },
  hsdp_replicate_size: { kind: 'int', default: 1, min: 1, description: 'Number of HSDP replica groups.' },
  allgather_degree: {
    kind: 'int',
    default: 1,
    min: 1,
    description: '(later upstream) AllGather-KV sequence parallelism; exclusive with Ulysses/ring.',
  },
  ulysses_a2a_permute: {
    kind: 'bool',
    default: false,
    description: '(later upstream) Fused permute-free all-to-all for strict Ulysses.',
  },
  text_encoder_tp_size: {
    kind: 'int',
    default: 1,
    min: 1,
    description: '(later upstream) Tensor-parallel ranks for the text encoder; reuses DiT ranks.',
  },
  vae_parallel_mode: {
    kind: 'enum',
    default: 'tile',
    values: ['tile', 'spatial_shard_height', 'spatial_shard_width'],
    description: '(later upstream) VAE parallel decode strategy.',
  },
  mask_sp_padding: {
    kind: 'bool',
    default: false,
    description: '(later upstream) Mask zero-padded sequence-parallel tokens in attention.',
  },
} as const satisfies Record<string, DiffusionParallelFieldSpec>;

/** A key of {@link DIFFUSION_PARALLEL_FIELDS}. */
export type DiffusionParallelField = keyof typeof DIFFUSION_PARALLEL_FIELDS;

/**
 * `world_size` is not a field upstream; `get_stage_devices_per_replica` reads it before building the
 * config, so a YAML file may pin the device count directly. Accepted beside the fields.
 */
export const DIFFUSION_WORLD_SIZE_KEY = 'world_size';

/** Every key accepted in `parallel_config`, in table order, `world_size` last. */
export const DIFFUSION_PARALLEL_KEYS: readonly string[] = [
  ...Object.keys(DIFFUSION_PARALLEL_FIELDS),
  DIFFUSION_WORLD_SIZE_KEY,
];
