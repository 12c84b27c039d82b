// The guest's facts as data (core/guest/structs.ts, services.ts, ntstatus.ts): the XP SP1 service
// tables, the XP structure offsets and the generated assembler constants, NTSTATUS and bug-check names.
//   npx tsc -p tsconfig.json && npx tap dist/test/guest-data.test.js
import t from 'tap';
import { assemble } from '../core/asm/index.js';
import {
  NT_SERVICES,
  WIN32K_SERVICES,
  argumentTable,
  requireService,
  serviceByName,
  serviceByNumber,
  serviceDataDir,
} from '../core/guest/services.js';
import {
  STRUCTS,
  STRUCT_NAMES,
  elementOffset,
  fieldSize,
  flatOffsets,
  offsetOf,
  offsetsAsm,
  read,
  readField,
  readNumber,
  sizeOf,
  writeField,
  type StructName,
} from '../core/guest/structs.js';
import { BUGCHECK, NTSTATUS, bugCheckName, ntSuccess, statusName, statusSeverity } from '../core/guest/ntstatus.js';

t.test('ntoskrnl service table (XP SP1)', async (t) => {
  t.equal(NT_SERVICES.length, 284);
  NT_SERVICES.forEach((s, i) => {
    if (s.number !== i || s.index !== i || s.table !== 0 || s.argBytes !== 4 * s.args) t.fail(`entry ${i}: ${JSON.stringify(s)}`);
  });
  const check = (name: string, number: number, args: number, argBytes: number): void => {
    const s = serviceByName(name);
    t.ok(s, name);
    t.same({ number: s?.number, args: s?.args, argBytes: s?.argBytes }, { number, args, argBytes }, name);
    t.equal(serviceByNumber(number)?.name, s?.name, `${name} by number`);
  };
  check('NtAcceptConnectPort', 0x000, 6, 0x18);
  check('NtAccessCheck', 0x001, 8, 0x20);
  check('NtReadFile', 0x0b7, 9, 0x24);
  check('NtProtectVirtualMemory', 0x089, 5, 0x14);
  check('NtClose', 0x019, 1, 0x04);
  check('NtContinue', 0x020, 2, 0x08);
  check('NtCallbackReturn', 0x014, 3, 0x0c);
  check('NtWaitForSingleObject', 0x10f, 3, 0x0c);
  check('NtSetLdtEntries', 0x0e9, 6, 0x18);
  t.equal(NT_SERVICES[283]!.number, 0x11b, 'last ntoskrnl service is 0x11B');
  t.equal(serviceByNumber(0x11c), undefined, '0x11C is past the table');
  t.equal(serviceByNumber(-1), undefined);
  t.equal(serviceByNumber(0x0fff), undefined);

  // Zw and Nt name the same entry
  t.equal(serviceByName('ZwReadFile'), serviceByName('NtReadFile'));
  t.equal(serviceByName('ZwClose')?.number, 0x19);
  t.equal(serviceByName('NtNoSuchService'), undefined);
  t.throws(() => requireService('NtReadFiel'), /no XP SP1 system service named 'NtReadFiel'; did you mean 'NtReadFile'\?/);
  t.equal(requireService('ZwWriteFile').number, 0x112);

  const args = argumentTable(0);
  t.equal(args.length, 284);
  t.equal(args[0xb7], 0x24);
  t.equal(args[0x19], 4);
});

t.test('win32k service table (XP SP1)', async (t) => {
  t.equal(WIN32K_SERVICES.length, 667);
  t.equal(WIN32K_SERVICES[0]!.number, 0x1000);
  t.equal(WIN32K_SERVICES[0]!.name, 'NtGdiAbortDoc');
  t.equal(WIN32K_SERVICES[666]!.number, 0x129a);
  WIN32K_SERVICES.forEach((s, i) => {
    if (s.number !== 0x1000 + i || s.index !== i || s.table !== 1 || s.argBytes !== 4 * s.args) t.fail(`entry ${i}: ${JSON.stringify(s)}`);
  });
  t.equal(serviceByNumber(0x1000)?.name, 'NtGdiAbortDoc');
  t.equal(serviceByNumber(0x129b), undefined, 'past the shadow table');
  t.equal(serviceByName('NtGdiAbortDoc')?.table, 1);
  // SP1's NtUserValidateHandleSecure (0x1248) has one argument (two from SP2 on)
  t.same(serviceByNumber(0x1248) && { name: serviceByNumber(0x1248)!.name, args: serviceByNumber(0x1248)!.args }, { name: 'NtUserValidateHandleSecure', args: 1 });
  t.equal(argumentTable(1).length, 667);
});

t.test('the service CSVs are found inside the project', async (t) => {
  const dir = serviceDataDir();
  t.match(dir.replace(/\\/g, '/'), /\/core\/guest\/data$/);
  t.notMatch(dir, /shared/);
});

t.test('structure offsets (XP x86)', async (t) => {
  const eq = (struct: string, got: number, want: number): void => void t.equal(got, want, `${struct} = 0x${want.toString(16)}`);
  // KPCR
  eq('KPCR.NtTib.ExceptionList', offsetOf('KPCR', 'NtTib.ExceptionList'), 0x0);
  eq('KPCR.NtTib.Self', offsetOf('KPCR', 'NtTib.Self'), 0x18);
  eq('KPCR.SelfPcr', offsetOf('KPCR', 'SelfPcr'), 0x1c);
  eq('KPCR.Prcb', offsetOf('KPCR', 'Prcb'), 0x20);
  eq('KPCR.Irql', offsetOf('KPCR', 'Irql'), 0x24);
  eq('KPCR.IDT', offsetOf('KPCR', 'IDT'), 0x38);
  eq('KPCR.GDT', offsetOf('KPCR', 'GDT'), 0x3c);
  eq('KPCR.TSS', offsetOf('KPCR', 'TSS'), 0x40);
  eq('KPCR.PrcbData', offsetOf('KPCR', 'PrcbData'), 0x120);
  eq('KPCR.PrcbData.CurrentThread', offsetOf('KPCR', 'PrcbData.CurrentThread'), 0x124);
  eq('KPCR.PrcbData.KeSystemCalls', offsetOf('KPCR', 'PrcbData.KeSystemCalls'), 0x638);
  eq('KPCR.PrcbData.DpcStack', offsetOf('KPCR', 'PrcbData.DpcStack'), 0x988);
  eq('sizeof KPCR', sizeOf('KPCR'), 0xd70);
  eq('sizeof KPRCB', sizeOf('KPRCB'), 0xc50);
  // KTHREAD
  eq('KTHREAD.InitialStack', offsetOf('KTHREAD', 'InitialStack'), 0x18);
  eq('KTHREAD.StackLimit', offsetOf('KTHREAD', 'StackLimit'), 0x1c);
  eq('KTHREAD.Teb', offsetOf('KTHREAD', 'Teb'), 0x20);
  eq('KTHREAD.KernelStack', offsetOf('KTHREAD', 'KernelStack'), 0x28);
  eq('KTHREAD.Alerted', offsetOf('KTHREAD', 'Alerted'), 0x2e);
  eq('KTHREAD.Alerted[1]', elementOffset('KTHREAD', 'Alerted', 1), 0x2f);
  eq('KTHREAD.ApcState', offsetOf('KTHREAD', 'ApcState'), 0x34);
  eq('KTHREAD.ApcState.Process', offsetOf('KTHREAD', 'ApcState.Process'), 0x44);
  eq('KTHREAD.ApcState.KernelApcInProgress', offsetOf('KTHREAD', 'ApcState.KernelApcInProgress'), 0x48);
  eq('KTHREAD.ApcState.KernelApcPending', offsetOf('KTHREAD', 'ApcState.KernelApcPending'), 0x49);
  eq('KTHREAD.ApcState.UserApcPending', offsetOf('KTHREAD', 'ApcState.UserApcPending'), 0x4a);
  eq('KTHREAD.ServiceTable', offsetOf('KTHREAD', 'ServiceTable'), 0xe0);
  eq('KTHREAD.Win32Thread', offsetOf('KTHREAD', 'Win32Thread'), 0x130);
  eq('KTHREAD.TrapFrame', offsetOf('KTHREAD', 'TrapFrame'), 0x134);
  eq('KTHREAD.ApcStatePointer', offsetOf('KTHREAD', 'ApcStatePointer'), 0x138);
  eq('KTHREAD.PreviousMode', offsetOf('KTHREAD', 'PreviousMode'), 0x140);
  eq('KTHREAD.SavedApcState', offsetOf('KTHREAD', 'SavedApcState'), 0x14c);
  eq('KTHREAD.Alertable', offsetOf('KTHREAD', 'Alertable'), 0x164);
  eq('KTHREAD.ApcStateIndex', offsetOf('KTHREAD', 'ApcStateIndex'), 0x165);
  eq('KTHREAD.ApcQueueable', offsetOf('KTHREAD', 'ApcQueueable'), 0x166);
  eq('KTHREAD.StackBase', offsetOf('KTHREAD', 'StackBase'), 0x168);
  eq('KTHREAD.SuspendApc', offsetOf('KTHREAD', 'SuspendApc'), 0x16c);
  eq('KTHREAD.ThreadListEntry', offsetOf('KTHREAD', 'ThreadListEntry'), 0x1b0);
  eq('sizeof KTHREAD', sizeOf('KTHREAD'), 0x1c0);
  // KAPC_STATE, KAPC
  eq('KAPC_STATE.UserApcPending', offsetOf('KAPC_STATE', 'UserApcPending'), 0x16);
  eq('sizeof KAPC_STATE', sizeOf('KAPC_STATE'), 0x18);
  eq('KAPC.Thread', offsetOf('KAPC', 'Thread'), 0x8);
  eq('KAPC.ApcListEntry', offsetOf('KAPC', 'ApcListEntry'), 0xc);
  eq('KAPC.KernelRoutine', offsetOf('KAPC', 'KernelRoutine'), 0x14);
  eq('KAPC.RundownRoutine', offsetOf('KAPC', 'RundownRoutine'), 0x18);
  eq('KAPC.NormalRoutine', offsetOf('KAPC', 'NormalRoutine'), 0x1c);
  eq('KAPC.NormalContext', offsetOf('KAPC', 'NormalContext'), 0x20);
  eq('KAPC.SystemArgument1', offsetOf('KAPC', 'SystemArgument1'), 0x24);
  eq('KAPC.SystemArgument2', offsetOf('KAPC', 'SystemArgument2'), 0x28);
  eq('KAPC.ApcStateIndex', offsetOf('KAPC', 'ApcStateIndex'), 0x2c);
  eq('KAPC.ApcMode', offsetOf('KAPC', 'ApcMode'), 0x2d);
  eq('KAPC.Inserted', offsetOf('KAPC', 'Inserted'), 0x2e);
  eq('sizeof KAPC', sizeOf('KAPC'), 0x30);
  // KTRAP_FRAME: every field
  const trap: [string, number][] = [
    ['DbgEbp', 0x00], ['DbgEip', 0x04], ['DbgArgMark', 0x08], ['DbgArgPointer', 0x0c], ['TempSegCs', 0x10], ['TempEsp', 0x14],
    ['Dr0', 0x18], ['Dr1', 0x1c], ['Dr2', 0x20], ['Dr3', 0x24], ['Dr6', 0x28], ['Dr7', 0x2c], ['SegGs', 0x30], ['SegEs', 0x34],
    ['SegDs', 0x38], ['Edx', 0x3c], ['Ecx', 0x40], ['Eax', 0x44], ['PreviousPreviousMode', 0x48], ['ExceptionList', 0x4c],
    ['SegFs', 0x50], ['Edi', 0x54], ['Esi', 0x58], ['Ebx', 0x5c], ['Ebp', 0x60], ['ErrCode', 0x64], ['Eip', 0x68], ['SegCs', 0x6c],
    ['EFlags', 0x70], ['HardwareEsp', 0x74], ['HardwareSegSs', 0x78], ['V86Es', 0x7c], ['V86Ds', 0x80], ['V86Fs', 0x84], ['V86Gs', 0x88],
  ];
  t.same(
    STRUCTS.KTRAP_FRAME.fields.map((f) => [f.name, f.offset]),
    trap,
    'KTRAP_FRAME: all 35 fields, 4 bytes each, in order',
  );
  eq('sizeof KTRAP_FRAME', sizeOf('KTRAP_FRAME'), 0x8c);
  eq('sizeof FX_SAVE_AREA + KTRAP_FRAME', 0x210 + sizeOf('KTRAP_FRAME'), 0x29c);
  // KTSS
  eq('KTSS.Esp0', offsetOf('KTSS', 'Esp0'), 0x4);
  eq('KTSS.Ss0', offsetOf('KTSS', 'Ss0'), 0x8);
  eq('KTSS.IoMapBase', offsetOf('KTSS', 'IoMapBase'), 0x66);
  t.ok(sizeOf('KTSS') >= 0x68);
  // service descriptor
  eq('KSERVICE_TABLE_DESCRIPTOR.Base', offsetOf('KSERVICE_TABLE_DESCRIPTOR', 'Base'), 0x0);
  eq('KSERVICE_TABLE_DESCRIPTOR.Count', offsetOf('KSERVICE_TABLE_DESCRIPTOR', 'Count'), 0x4);
  eq('KSERVICE_TABLE_DESCRIPTOR.Limit', offsetOf('KSERVICE_TABLE_DESCRIPTOR', 'Limit'), 0x8);
  eq('KSERVICE_TABLE_DESCRIPTOR.Number', offsetOf('KSERVICE_TABLE_DESCRIPTOR', 'Number'), 0xc);
  eq('sizeof KSERVICE_TABLE_DESCRIPTOR', sizeOf('KSERVICE_TABLE_DESCRIPTOR'), 0x10);
  // processes and threads
  eq('EPROCESS.Pcb.DirectoryTableBase', offsetOf('EPROCESS', 'Pcb.DirectoryTableBase'), 0x18);
  eq('EPROCESS.UniqueProcessId', offsetOf('EPROCESS', 'UniqueProcessId'), 0x84);
  eq('EPROCESS.ObjectTable', offsetOf('EPROCESS', 'ObjectTable'), 0xc4);
  eq('EPROCESS.ImageFileName', offsetOf('EPROCESS', 'ImageFileName'), 0x174);
  eq('EPROCESS.ImageFileName size', fieldSize('EPROCESS', 'ImageFileName'), 16);
  eq('EPROCESS.Peb', offsetOf('EPROCESS', 'Peb'), 0x1b0);
  eq('sizeof EPROCESS', sizeOf('EPROCESS'), 0x260);
  eq('sizeof KPROCESS', sizeOf('KPROCESS'), 0x6c);
  eq('ETHREAD.Tcb.PreviousMode', offsetOf('ETHREAD', 'Tcb.PreviousMode'), 0x140);
  eq('ETHREAD.Cid', offsetOf('ETHREAD', 'Cid'), 0x1ec);
  eq('ETHREAD.Cid.UniqueThread', offsetOf('ETHREAD', 'Cid.UniqueThread'), 0x1f0);
  eq('ETHREAD.IrpList', offsetOf('ETHREAD', 'IrpList'), 0x210);
  eq('ETHREAD.ThreadsProcess', offsetOf('ETHREAD', 'ThreadsProcess'), 0x220);
  eq('sizeof ETHREAD', sizeOf('ETHREAD'), 0x258);
  // TEB
  eq('TEB.NtTib.ExceptionList', offsetOf('TEB', 'NtTib.ExceptionList'), 0x0);
  eq('TEB.NtTib.StackBase', offsetOf('TEB', 'NtTib.StackBase'), 0x4);
  eq('TEB.NtTib.StackLimit', offsetOf('TEB', 'NtTib.StackLimit'), 0x8);
  eq('TEB.NtTib.Self', offsetOf('TEB', 'NtTib.Self'), 0x18);
  eq('TEB.ClientId', offsetOf('TEB', 'ClientId'), 0x20);
  eq('TEB.ProcessEnvironmentBlock', offsetOf('TEB', 'ProcessEnvironmentBlock'), 0x30);
  eq('TEB.LastErrorValue', offsetOf('TEB', 'LastErrorValue'), 0x34);
  eq('TEB.LastStatusValue', offsetOf('TEB', 'LastStatusValue'), 0xbf4);
  eq('TEB.GdiBatchCount', offsetOf('TEB', 'GdiBatchCount'), 0xf70);
  // object manager and small structures
  eq('OBJECT_HEADER.Body', offsetOf('OBJECT_HEADER', 'Body'), 0x18);
  eq('OBJECT_HEADER.Type', offsetOf('OBJECT_HEADER', 'Type'), 0x8);
  eq('sizeof HANDLE_TABLE_ENTRY', sizeOf('HANDLE_TABLE_ENTRY'), 8);
  eq('HANDLE_TABLE_ENTRY.GrantedAccess', offsetOf('HANDLE_TABLE_ENTRY', 'GrantedAccess'), 4);
  eq('UNICODE_STRING.Buffer', offsetOf('UNICODE_STRING', 'Buffer'), 4);
  eq('sizeof UNICODE_STRING', sizeOf('UNICODE_STRING'), 8);
  eq('OBJECT_ATTRIBUTES.ObjectName', offsetOf('OBJECT_ATTRIBUTES', 'ObjectName'), 8);
  eq('OBJECT_ATTRIBUTES.Attributes', offsetOf('OBJECT_ATTRIBUTES', 'Attributes'), 0xc);
  eq('OBJECT_ATTRIBUTES.SecurityQualityOfService', offsetOf('OBJECT_ATTRIBUTES', 'SecurityQualityOfService'), 0x14);
  eq('sizeof OBJECT_ATTRIBUTES', sizeOf('OBJECT_ATTRIBUTES'), 0x18);
  eq('IO_STATUS_BLOCK.Information', offsetOf('IO_STATUS_BLOCK', 'Information'), 4);
  eq('sizeof IO_STATUS_BLOCK', sizeOf('IO_STATUS_BLOCK'), 8);
  eq('sizeof LIST_ENTRY', sizeOf('LIST_ENTRY'), 8);
  // I/O manager
  eq('DRIVER_OBJECT.MajorFunction', offsetOf('DRIVER_OBJECT', 'MajorFunction'), 0x38);
  eq('DRIVER_OBJECT.MajorFunction[IRP_MJ_DEVICE_CONTROL]', elementOffset('DRIVER_OBJECT', 'MajorFunction', 0x0e), 0x70);
  eq('DRIVER_OBJECT.MajorFunction size', fieldSize('DRIVER_OBJECT', 'MajorFunction'), 28 * 4);
  eq('sizeof DRIVER_OBJECT', sizeOf('DRIVER_OBJECT'), 0xa8);
  eq('sizeof DEVICE_OBJECT', sizeOf('DEVICE_OBJECT'), 0xb8);
  eq('DEVICE_OBJECT.DeviceExtension', offsetOf('DEVICE_OBJECT', 'DeviceExtension'), 0x28);
  eq('IRP.RequestorMode', offsetOf('IRP', 'RequestorMode'), 0x20);
  eq('IRP.IoStatus.Information', offsetOf('IRP', 'IoStatus.Information'), 0x1c);
  eq('IRP.AssociatedIrp.SystemBuffer', offsetOf('IRP', 'AssociatedIrp.SystemBuffer'), 0xc);
  eq('IRP.UserBuffer', offsetOf('IRP', 'UserBuffer'), 0x3c);
  eq('IRP.Tail.Overlay.Thread', offsetOf('IRP', 'Tail.Overlay.Thread'), 0x50);
  eq('IRP.Tail.Overlay.CurrentStackLocation', offsetOf('IRP', 'Tail.Overlay.CurrentStackLocation'), 0x60);
  eq('sizeof IRP', sizeOf('IRP'), 0x70);
  eq('IO_STACK_LOCATION.Parameters.Read.Length', offsetOf('IO_STACK_LOCATION', 'Parameters.Read.Length'), 0x4);
  eq('IO_STACK_LOCATION.Parameters.Read.ByteOffset', offsetOf('IO_STACK_LOCATION', 'Parameters.Read.ByteOffset'), 0xc);
  eq('IO_STACK_LOCATION.Parameters.DeviceIoControl.IoControlCode', offsetOf('IO_STACK_LOCATION', 'Parameters.DeviceIoControl.IoControlCode'), 0xc);
  eq('IO_STACK_LOCATION.DeviceObject', offsetOf('IO_STACK_LOCATION', 'DeviceObject'), 0x14);
  eq('IO_STACK_LOCATION.FileObject', offsetOf('IO_STACK_LOCATION', 'FileObject'), 0x18);
  eq('sizeof IO_STACK_LOCATION', sizeOf('IO_STACK_LOCATION'), 0x24);
  eq('FILE_OBJECT.FileName', offsetOf('FILE_OBJECT', 'FileName'), 0x30);
  eq('FILE_OBJECT.CurrentByteOffset', offsetOf('FILE_OBJECT', 'CurrentByteOffset'), 0x38);
  eq('sizeof FILE_OBJECT', sizeOf('FILE_OBJECT'), 0x70);
  eq('KUSER_SHARED_DATA.SystemCall', offsetOf('KUSER_SHARED_DATA', 'SystemCall'), 0x300);
});

t.test('every structure is consistent', async (t) => {
  for (const name of STRUCT_NAMES) {
    const info = STRUCTS[name];
    for (const f of info.fields) {
      if (f.offset + f.size > info.size) t.fail(`${name}.${f.name} runs past the end`);
      if (f.kind === 'scalar' && f.type !== 'u64' && f.elementSize > 1 && f.offset % Math.min(f.elementSize, 4) !== 0) {
        t.fail(`${name}.${f.name} is misaligned`);
      }
    }
  }
  // KTRAP_FRAME tiles its 0x8C bytes exactly
  let next = 0;
  for (const f of STRUCTS.KTRAP_FRAME.fields) {
    t.equal(f.offset, next, `KTRAP_FRAME.${f.name} follows the previous field`);
    next = f.offset + f.size;
  }
  t.equal(next, 0x8c);
});

t.test('bad field names are errors naming the field', async (t) => {
  // @ts-expect-error a typo is a compile-time error
  t.throws(() => offsetOf('KTHREAD', 'PreviusMode'), /KTHREAD has no field 'PreviusMode'; did you mean 'PreviousMode'\?/);
  // @ts-expect-error a path into a non-structure field
  t.throws(() => offsetOf('KTHREAD', 'PreviousMode.X'), /KTHREAD.PreviousMode is not a nested structure/);
  // @ts-expect-error an unknown structure
  t.throws(() => sizeOf('KTHRAED'), /unknown structure 'KTHRAED'; did you mean 'KTHREAD'\?/);
  t.throws(() => elementOffset('KTHREAD', 'Alerted', 2), /index 2 is outside \[0, 2\)/);
});

t.test('generated assembler offsets', async (t) => {
  const asm = offsetsAsm();
  const lines = new Set(asm.split('\n'));
  for (const line of [
    'KTHREAD_PreviousMode equ 0x140',
    'KTHREAD_TrapFrame equ 0x134',
    'KTHREAD_ServiceTable equ 0xE0',
    'KTHREAD_Alerted equ 0x2E',
    'KTHREAD_InitialStack equ 0x18',
    'KTHREAD_Teb equ 0x20',
    'KTHREAD_ApcStateIndex equ 0x165',
    'KTHREAD_ApcState_UserApcPending equ 0x4A',
    'KTHREAD_ApcState_KernelApcPending equ 0x49',
    'KTHREAD_LENGTH equ 0x1C0',
    'KTRAP_FRAME_Eip equ 0x68',
    'KTRAP_FRAME_SegCs equ 0x6C',
    'KTRAP_FRAME_HardwareEsp equ 0x74',
    'KTRAP_FRAME_PreviousPreviousMode equ 0x48',
    'KTRAP_FRAME_ExceptionList equ 0x4C',
    'KTRAP_FRAME_Edx equ 0x3C',
    'KTRAP_FRAME_LENGTH equ 0x8C',
    'KPCR_NtTib_ExceptionList equ 0x0',
    'KPCR_NtTib_Self equ 0x18',
    'KPCR_SelfPcr equ 0x1C',
    'KPCR_PrcbData_CurrentThread equ 0x124',
    'KPCR_PrcbData_KeSystemCalls equ 0x638',
    'KPCR_PrcbData_DpcStack equ 0x988',
    'KPCR_LENGTH equ 0xD70',
    'KTSS_Esp0 equ 0x4',
    'KSERVICE_TABLE_DESCRIPTOR_Limit equ 0x8',
    'KSERVICE_TABLE_DESCRIPTOR_Number equ 0xC',
    'KSERVICE_TABLE_DESCRIPTOR_LENGTH equ 0x10',
    'EPROCESS_ObjectTable equ 0xC4',
    'EPROCESS_Pcb_DirectoryTableBase equ 0x18',
    'ETHREAD_Tcb_PreviousMode equ 0x140',
    'ETHREAD_ThreadsProcess equ 0x220',
    'TEB_LastStatusValue equ 0xBF4',
    'IRP_Tail_Overlay_CurrentStackLocation equ 0x60',
    'DRIVER_OBJECT_MajorFunction equ 0x38',
    'OBJECT_HEADER_Body equ 0x18',
  ]) {
    t.ok(lines.has(line), line);
  }
  // one symbol per line, no duplicates
  const symbols = asm.split('\n').filter((l) => / equ /.test(l)).map((l) => l.split(' ')[0]!);
  t.equal(new Set(symbols).size, symbols.length, 'no duplicate symbols');
  t.equal(symbols.length, [...STRUCT_NAMES].reduce((n, s) => n + 1 + flatOffsets(s).size, 0));
  // a subset, and the project's assembler accepts the generated text
  const some = offsetsAsm(['KTHREAD', 'KTRAP_FRAME'] as StructName[]);
  t.notMatch(some, /KPCR_/);
  const result = assemble(offsetsAsm() + '\nmov al, [eax + KTHREAD_PreviousMode]\ncmp byte [ebx + KTHREAD_ApcState_UserApcPending], 0\n');
  t.equal(result.labels.get('KTHREAD_PreviousMode'), 0x140);
  t.equal(result.labels.get('KTRAP_FRAME_LENGTH'), 0x8c);
  t.same([...result.bytes], [0x8a, 0x80, 0x40, 0x01, 0x00, 0x00, 0x80, 0x7b, 0x4a, 0x00], 'mov al,[eax+140h]; cmp byte [ebx+4Ah],0');
});

t.test('decoders read through a side-effect-free byte reader', async (t) => {
  const mem = new Map<number, number>();
  const put = (addr: number, byte: number): void => void mem.set(addr >>> 0, byte & 0xff);
  const get = (addr: number): number => mem.get(addr >>> 0) ?? 0;
  const thread = 0x81234000;
  writeField('KTHREAD', 'PreviousMode', put, thread, 1);
  writeField('KTHREAD', 'TrapFrame', put, thread, 0xf8a3fd64);
  writeField('KTHREAD', 'ApcState.UserApcPending', put, thread, 1);
  writeField('KTHREAD', 'WaitStatus', put, thread, -1);
  put(thread + 0x2f, 1); // Alerted[UserMode]
  t.equal(get(thread + 0x140), 1);
  t.equal(readNumber('KTHREAD', 'PreviousMode', get, thread), 1);
  t.equal(readNumber('KTHREAD', 'TrapFrame', get, thread), 0xf8a3fd64);
  t.equal(readNumber('KTHREAD', 'WaitStatus', get, thread), -1);
  const k = read('KTHREAD', get, thread);
  t.equal(k.PreviousMode, 1);
  t.equal(k.TrapFrame, 0xf8a3fd64);
  t.equal(k.ApcState.UserApcPending, 1);
  t.equal(k.ApcState.KernelApcPending, 0);
  t.same(k.Alerted, [0, 1]);
  t.equal(k.SuspendApc.Type, 0);
  t.same(readField('KTHREAD', 'ApcState', get, thread), k.ApcState);

  const proc = 0x81300000;
  [...'notepad.exe'].forEach((c, i) => put(proc + 0x174 + i, c.charCodeAt(0)));
  writeField('EPROCESS', 'CreateTime', put, proc, 0x01c2a3b4c5d6e7f8n);
  const name = readField('EPROCESS', 'ImageFileName', get, proc) as number[];
  t.equal(String.fromCharCode(...name.filter((b) => b !== 0)), 'notepad.exe');
  t.equal(read('EPROCESS', get, proc).CreateTime, 0x01c2a3b4c5d6e7f8n);
  t.throws(() => readNumber('EPROCESS', 'CreateTime', get, proc), /not a scalar of at most 4 bytes/);

  // the reader is only asked for bytes inside the structure
  const asked: number[] = [];
  read('KTRAP_FRAME', (a) => (asked.push(a), 0), 0xfffffff0);
  t.equal(asked.length, 0x8c);
  t.ok(asked.every((a) => a >= 0 && a <= 0xffffffff), 'addresses wrap to 32 bits');
});

t.test('NTSTATUS and bug-check names', async (t) => {
  t.equal(statusName(0xc0000008), 'STATUS_INVALID_HANDLE');
  t.equal(statusName(-1073741816), 'STATUS_INVALID_HANDLE', 'signed input');
  t.equal(statusName(0), 'STATUS_SUCCESS');
  t.equal(statusName(0xc0000005), 'STATUS_ACCESS_VIOLATION');
  t.equal(statusName(0x80000002), 'STATUS_DATATYPE_MISALIGNMENT');
  t.equal(statusName(0xc000001c), 'STATUS_INVALID_SYSTEM_SERVICE');
  t.equal(statusName(0xc0000002), 'STATUS_NOT_IMPLEMENTED');
  t.equal(statusName(0x000000c0), 'STATUS_USER_APC');
  t.equal(statusName(0xc0000999), '0xC0000999');
  const expected: Record<string, number> = {
    STATUS_SUCCESS: 0x00000000, STATUS_USER_APC: 0x000000c0, STATUS_KERNEL_APC: 0x00000100, STATUS_ALERTED: 0x00000101,
    STATUS_TIMEOUT: 0x00000102, STATUS_PENDING: 0x00000103, STATUS_DATATYPE_MISALIGNMENT: 0x80000002,
    STATUS_UNSUCCESSFUL: 0xc0000001, STATUS_NOT_IMPLEMENTED: 0xc0000002, STATUS_INFO_LENGTH_MISMATCH: 0xc0000004,
    STATUS_ACCESS_VIOLATION: 0xc0000005, STATUS_INVALID_HANDLE: 0xc0000008, STATUS_INVALID_PARAMETER: 0xc000000d,
    STATUS_NO_MEMORY: 0xc0000017, STATUS_INVALID_SYSTEM_SERVICE: 0xc000001c, STATUS_ACCESS_DENIED: 0xc0000022,
    STATUS_BUFFER_TOO_SMALL: 0xc0000023, STATUS_OBJECT_TYPE_MISMATCH: 0xc0000024, STATUS_OBJECT_NAME_INVALID: 0xc0000033,
    STATUS_OBJECT_NAME_NOT_FOUND: 0xc0000034, STATUS_OBJECT_NAME_COLLISION: 0xc0000035,
    STATUS_INVALID_DEVICE_REQUEST: 0xc0000010, STATUS_END_OF_FILE: 0xc0000011, STATUS_OBJECT_PATH_NOT_FOUND: 0xc000003a,
    STATUS_INSUFFICIENT_RESOURCES: 0xc000009a, STATUS_NOT_SUPPORTED: 0xc00000bb, STATUS_INVALID_DEVICE_STATE: 0xc0000184,
    STATUS_BREAKPOINT: 0x80000003, STATUS_SINGLE_STEP: 0x80000004, STATUS_ILLEGAL_INSTRUCTION: 0xc000001d,
    STATUS_INTEGER_DIVIDE_BY_ZERO: 0xc0000094, STATUS_PRIVILEGED_INSTRUCTION: 0xc0000096, STATUS_STACK_OVERFLOW: 0xc00000fd,
    STATUS_GUARD_PAGE_VIOLATION: 0x80000001, STATUS_UNWIND: 0xc0000027, STATUS_BAD_STACK: 0xc0000028, STATUS_INVALID_UNWIND_TARGET: 0xc0000029,
    STATUS_NONCONTINUABLE_EXCEPTION: 0xc0000025, STATUS_INVALID_DISPOSITION: 0xc0000026, STATUS_CONFLICTING_ADDRESSES: 0xc0000018,
    STATUS_NO_EVENT_PAIR: 0xc000014e, STATUS_NO_CALLBACK_ACTIVE: 0xc0000258,
  };
  for (const [name, value] of Object.entries(expected)) t.equal((NTSTATUS as Record<string, number>)[name], value, name);
  t.ok(ntSuccess(NTSTATUS.STATUS_PENDING));
  t.notOk(ntSuccess(NTSTATUS.STATUS_DATATYPE_MISALIGNMENT));
  t.equal(statusSeverity(NTSTATUS.STATUS_ACCESS_VIOLATION), 'error');
  t.equal(statusSeverity(NTSTATUS.STATUS_BREAKPOINT), 'warning');

  t.same(
    { ...BUGCHECK },
    {
      APC_INDEX_MISMATCH: 0x01, IRQL_NOT_LESS_OR_EQUAL: 0x0a, KMODE_EXCEPTION_NOT_HANDLED: 0x1e, SYSTEM_SERVICE_EXCEPTION: 0x3b,
      IRQL_GT_ZERO_AT_SYSTEM_SERVICE: 0x4a, PAGE_FAULT_IN_NONPAGED_AREA: 0x50, SYSTEM_THREAD_EXCEPTION_NOT_HANDLED: 0x7e,
      UNEXPECTED_KERNEL_MODE_TRAP: 0x7f, KERNEL_MODE_EXCEPTION_NOT_HANDLED: 0x8e, INVALID_KERNEL_HANDLE: 0x93,
      ATTEMPTED_WRITE_TO_READONLY_MEMORY: 0xbe, DRIVER_IRQL_NOT_LESS_OR_EQUAL: 0xd1, MANUALLY_INITIATED_CRASH: 0xe2,
    },
  );
  t.equal(bugCheckName(0x93), 'INVALID_KERNEL_HANDLE');
  t.equal(bugCheckName(0x7f), 'UNEXPECTED_KERNEL_MODE_TRAP');
  t.equal(bugCheckName(0x1234), '0x00001234');
});
