import { toBinary } from '@bufbuild/protobuf'
import { type FileDescriptorProto, FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt'
import type { Server } from '@grpc/grpc-js'
import { ReflectionService } from '@grpc/reflection'
import { loadDescriptorSet } from '@stackshift/proto/descriptor-set'

/** What ReflectionService takes: a proto-loader package definition. */
type PackageDefinition = ConstructorParameters<typeof ReflectionService>[0]

/**
 * Adds gRPC server reflection (grpc.reflection.v1 and v1alpha), built from
 * the protocol's descriptor set, so tools such as grpcurl and Postman can list
 * the services (the StackShift ones and grpc.health.v1.Health), describe them
 * and call them without local copies of the .proto files. Files are served
 * under their own names (`stackshift/jobs/v1/run_service.proto`), linked as
 * `buf build` linked them: every dependency listed, every reference fully
 * qualified, comments included.
 */
export function addReflection(server: Pick<Server, 'addService'>): void {
  new ReflectionService(packageDefinitionOf(loadDescriptorSet().file)).addToServer(server)
}

/**
 * ReflectionService takes a proto-loader package definition but reads only
 * the encoded FileDescriptorProtos its values carry; one value per file gives
 * it every file of the set, and nothing else of proto-loader's is needed.
 */
function packageDefinitionOf(files: readonly FileDescriptorProto[]): PackageDefinition {
  const definition = Object.fromEntries(
    files.map((file) => [
      file.name,
      {
        format: 'Protocol Buffer 3 FileDescriptorProto',
        type: file,
        fileDescriptorProtos: [Buffer.from(toBinary(FileDescriptorProtoSchema, file))],
      },
    ]),
  )
  return definition as unknown as PackageDefinition
}
