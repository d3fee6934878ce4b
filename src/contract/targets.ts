/**
 * The four build targets (docs/architecture.md "Targets"). Everything target-specific that the
 * planner, the images and the artifact check need comes from this one table.
 */
export const TARGET_IDS = ['linux-amd64', 'linux-arm-7', 'linux-arm64', 'linux-386'] as const;
/** Executables only (mode=exe), pure Go, built in the linux-amd64 image (docs/plugins.md, "Executable plugins"). */
export const EXE_TARGET_IDS = ['darwin-amd64', 'darwin-arm64', 'windows-amd64'] as const;
export const ALL_TARGET_IDS = [...TARGET_IDS, ...EXE_TARGET_IDS] as const;
/** The five platforms of Mattermost's plugin starter template (targets=mattermost). */
export const MATTERMOST_TARGETS = ['linux-amd64', 'linux-arm64', 'darwin-amd64', 'darwin-arm64', 'windows-amd64'] as const;
export type TargetId = (typeof ALL_TARGET_IDS)[number];
/** A target with builder images of its own: the four linux targets. */
export type ImageTargetId = (typeof TARGET_IDS)[number];

/** The header an executable for darwin (Mach-O) or windows (PE) must have (src/verify/exe-header.ts). */
export type ExeHeader = { format: 'macho'; cpu: number; name: string } | { format: 'pe'; machine: number; name: string };

export interface Target {
  id: TargetId;
  goos: 'linux' | 'darwin' | 'windows';
  goarch: 'amd64' | 'arm' | 'arm64' | '386';
  goarm?: '7';
  /** The builder image it builds in: its own for linux, linux-amd64's for the others. */
  image: ImageTargetId;
  /** The C compiler cgo uses in the target's image (linux only: the others build pure Go). */
  cc: string;
  /** ELF e_ident[EI_CLASS]: 1 = 32-bit, 2 = 64-bit (linux targets). */
  elfClass: 1 | 2;
  /** ELF e_machine (linux targets). */
  elfMachine: number;
  elfMachineName: string;
  /** darwin and windows: the executable's header, checked instead of ELF's. */
  header?: ExeHeader;
  /** What an executable's file name ends with (".exe" on windows). */
  suffix?: string;
}

const LINUX = { goos: 'linux' } as const;
/** Executables of other systems: no ELF fields that apply (never read: `header` is). */
const NOT_ELF = { cc: '', elfClass: 2, elfMachine: 0, image: 'linux-amd64' } as const;

export const TARGETS: Readonly<Record<TargetId, Target>> = {
  'linux-amd64': {
    id: 'linux-amd64',
    ...LINUX,
    goarch: 'amd64',
    image: 'linux-amd64',
    cc: 'gcc',
    elfClass: 2,
    elfMachine: 62,
    elfMachineName: 'x86-64',
  },
  'linux-arm-7': {
    id: 'linux-arm-7',
    ...LINUX,
    goarch: 'arm',
    goarm: '7',
    image: 'linux-arm-7',
    cc: 'arm-linux-gnueabihf-gcc',
    elfClass: 1,
    elfMachine: 40,
    elfMachineName: 'ARM',
  },
  'linux-arm64': {
    id: 'linux-arm64',
    ...LINUX,
    goarch: 'arm64',
    image: 'linux-arm64',
    cc: 'aarch64-linux-gnu-gcc',
    elfClass: 2,
    elfMachine: 183,
    elfMachineName: 'AArch64',
  },
  'linux-386': {
    id: 'linux-386',
    ...LINUX,
    goarch: '386',
    image: 'linux-386',
    cc: 'i686-linux-gnu-gcc',
    elfClass: 1,
    elfMachine: 3,
    elfMachineName: 'i386',
  },
  'darwin-amd64': {
    id: 'darwin-amd64',
    goos: 'darwin',
    goarch: 'amd64',
    ...NOT_ELF,
    elfMachineName: 'x86-64',
    header: { format: 'macho', cpu: 0x01000007, name: 'x86-64' },
  },
  'darwin-arm64': {
    id: 'darwin-arm64',
    goos: 'darwin',
    goarch: 'arm64',
    ...NOT_ELF,
    elfMachineName: 'arm64',
    header: { format: 'macho', cpu: 0x0100000c, name: 'arm64' },
  },
  'windows-amd64': {
    id: 'windows-amd64',
    goos: 'windows',
    goarch: 'amd64',
    ...NOT_ELF,
    elfMachineName: 'x86-64',
    header: { format: 'pe', machine: 0x8664, name: 'x86-64' },
    suffix: '.exe',
  },
};

/** The builder images `targets` build in, each once, in target-table order. */
export function imageTargetsOf(targets: readonly TargetId[]): ImageTargetId[] {
  return TARGET_IDS.filter((t) => targets.some((b) => TARGETS[b].image === t));
}

/** A target with builder images of its own (the four linux targets). */
export function isImageTarget(target: TargetId): target is ImageTargetId {
  return (TARGET_IDS as readonly string[]).includes(target);
}

export function isTargetId(value: string): value is TargetId {
  return (ALL_TARGET_IDS as readonly string[]).includes(value);
}
