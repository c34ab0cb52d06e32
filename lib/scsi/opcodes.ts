// Operation codes and service actions (SPC-4 / SBC-3 annexes).

export const enum Op {
  TestUnitReady = 0x00,
  RequestSense = 0x03,
  Read6 = 0x08,
  Write6 = 0x0a,
  Inquiry = 0x12,
  ModeSelect6 = 0x15,
  Reserve6 = 0x16,
  Release6 = 0x17,
  ModeSense6 = 0x1a,
  StartStopUnit = 0x1b,
  PreventAllow = 0x1e,
  ReadCapacity10 = 0x25,
  Read10 = 0x28,
  Write10 = 0x2a,
  WriteVerify10 = 0x2e,
  Verify10 = 0x2f,
  PreFetch10 = 0x34,
  SyncCache10 = 0x35,
  ReadDefectData10 = 0x37,
  WriteSame10 = 0x41,
  Unmap = 0x42,
  ModeSelect10 = 0x55,
  Reserve10 = 0x56,
  Release10 = 0x57,
  ModeSense10 = 0x5a,
  PrIn = 0x5e,
  PrOut = 0x5f,
  ExtendedCopy = 0x83,
  ReceiveCopyResults = 0x84,
  Read16 = 0x88,
  CompareAndWrite = 0x89,
  Write16 = 0x8a,
  OrWrite16 = 0x8b,
  WriteVerify16 = 0x8e,
  Verify16 = 0x8f,
  PreFetch16 = 0x90,
  SyncCache16 = 0x91,
  WriteSame16 = 0x93,
  ServiceActionIn16 = 0x9e,
  ReportLuns = 0xa0,
  MaintenanceIn = 0xa3,
  Read12 = 0xa8,
  Write12 = 0xaa,
  WriteVerify12 = 0xae,
  Verify12 = 0xaf,
  ReadDefectData12 = 0xb7,
}

export const enum SaIn16 {
  ReadCapacity16 = 0x10,
  GetLbaStatus = 0x12,
}

export const enum SaMaintIn {
  ReportTargetPortGroups = 0x0a,
  ReportSupportedOpcodes = 0x0c,
}

export const enum PrInSa {
  ReadKeys = 0x00,
  ReadReservation = 0x01,
  ReportCapabilities = 0x02,
  ReadFullStatus = 0x03,
}

export const enum PrOutSa {
  Register = 0x00,
  Reserve = 0x01,
  Release = 0x02,
  Clear = 0x03,
  Preempt = 0x04,
  PreemptAndAbort = 0x05,
  RegisterAndIgnore = 0x06,
  RegisterAndMove = 0x07,
}
