// Type declarations for faceverify.js (the module itself is plain JavaScript with JSDoc types).

export type CaptureState =
  | "consent" | "starting" | "capturing" | "finishing"
  | "match" | "no-match" | "enrolled" | "retry" | "locked-out" | "refused" | "expired"
  | "camera-denied" | "no-camera" | "connection-lost" | "error";

export interface Outcome {
  /** The final state. */
  outcome: CaptureState;
  /** The service's sealed receipt (match, no-match, enrolled): hand it to your backend to redeem. */
  receipt: string | null;
  /** What the page showed. */
  message: string;
}

export interface MountOptions {
  /** A ceremony token your backend minted with its API key (POST /v1/ceremonies). */
  token: string;
  /** The service's base URL (default: this page's origin). */
  service?: string;
  /** Frames sent per second, 1-15 (default 5); never more than one in flight. */
  fps?: number;
  /** "auto" (default): WebSocket, then HTTP when it cannot be opened or drops. */
  transport?: "auto" | "websocket" | "http";
  /** Frames are scaled to at most this width (default 640). */
  maxWidth?: number;
  /** Called on every state change. */
  onState?: (state: CaptureState, detail: object) => void;
  /** For tests (default navigator.mediaDevices). */
  mediaDevices?: MediaDevices;
  /** Set document.title to the ceremony's heading (default true). */
  setTitle?: boolean;
  /** Add faceverify.css (beside the module) to the page (default true). */
  stylesheet?: boolean;
}

export interface FrameUpdate {
  state: "baseline" | "challenge" | "passed" | "failed" | string;
  prompt: string;
  /** Per-frame feedback keys, e.g. "no-face", "turn-further". */
  feedback: string[];
  /** Challenges done, challenges asked. */
  progress: [number, number];
  finished: boolean;
  /** The screen-light colour to show until the next answer (null: no screen-light challenge). */
  screen?: { colour: string; hex: string } | null;
}

export const FEEDBACK: Record<string, string>;
export const MESSAGES: Record<string, string>;

export class ServiceError extends Error {
  constructor(code: string, status: number, detail: string, body?: object);
  code: string;
  status: number;
  body: Record<string, unknown>;
}

export class CeremonyClient {
  constructor(service: string, token: string);
  service: string;
  token: string;
  sessionToken?: string;
  describe(): Promise<Record<string, any>>;
  agree(sha256: string): Promise<{ token: string; consented_at: string }>;
  start(): Promise<{ token: string; nonce: string; prompt: string; deadline: string; challenges: number; screen?: { colour: string; hex: string } | null; websocket: string; frames: string }>;
  frame(frame: Blob): Promise<FrameUpdate>;
  finish(): Promise<{ outcome: CaptureState; receipt: string }>;
  socketUrl(path: string): string;
}

export class FaceCapture {
  constructor(root: HTMLElement, options: MountOptions);
  state: CaptureState | null;
  run(): Promise<Outcome>;
}

/** Run a ceremony inside `root`: consent (enrolment), camera, challenge, result. */
export function mount(root: HTMLElement, options: MountOptions): Promise<Outcome>;
export function stateForError(err: unknown): CaptureState;
export function stateForCameraError(err: unknown): CaptureState;
