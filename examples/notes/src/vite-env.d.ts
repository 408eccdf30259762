/// <reference types="vite/client" />

interface ImportMetaEnv {
  readonly VITE_BLINDSTORE_ZONE?: string;
}
