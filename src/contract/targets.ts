/**
 * The four build targets (docs/architecture.md "Targets"). Everything target-specific that the
 * planner, the images and the artifact check need comes from this one table.
 */
export const TARGET_IDS = ['linux-amd64', 'linux-arm-7', 'linux-arm64', 'linux-386'] as const;
export type TargetId = (typeof TARGET_IDS)[number];

export interface Target {
  id: TargetId;
  goos: 'linux';
  goarch: 'amd64' | 'arm' | 'arm64' | '386';
  goarm?: '7';
  /** The C compiler cgo uses in the target's image. */
  cc: string;
  /** ELF e_ident[EI_CLASS]: 1 = 32-bit, 2 = 64-bit. */
  elfClass: 1 | 2;
  /** ELF e_machine. */
  elfMachine: number;
  elfMachineName: string;
}

export const TARGETS: Readonly<Record<TargetId, Target>> = {
  'linux-amd64': { id: 'linux-amd64', goos: 'linux', goarch: 'amd64', cc: 'gcc', elfClass: 2, elfMachine: 62, elfMachineName: 'x86-64' },
  'linux-arm-7': {
    id: 'linux-arm-7',
    goos: 'linux',
    goarch: 'arm',
    goarm: '7',
    cc: 'arm-linux-gnueabihf-gcc',
    elfClass: 1,
    elfMachine: 40,
    elfMachineName: 'ARM',
  },
  'linux-arm64': {
    id: 'linux-arm64',
    goos: 'linux',
    goarch: 'arm64',
    cc: 'aarch64-linux-gnu-gcc',
    elfClass: 2,
    elfMachine: 183,
    elfMachineName: 'AArch64',
  },
  'linux-386': {
    id: 'linux-386',
    goos: 'linux',
    goarch: '386',
    cc: 'i686-linux-gnu-gcc',
    elfClass: 1,
    elfMachine: 3,
    elfMachineName: 'i386',
  },
};

export function isTargetId(value: string): value is TargetId {
  return (TARGET_IDS as readonly string[]).includes(value);
}
